package outbox_test

import (
	"encoding/json"
	"testing"
)

func jsonArray(t *testing.T, raw []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("not a JSON array of objects: %s: %v", raw, err)
	}
	return out
}
