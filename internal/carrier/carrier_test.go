package carrier

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
)

const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

// Clean keeps what Postgres stores within the limits and drops the rest.
func TestClean(t *testing.T) {
	t.Parallel()
	many := map[string]string{}
	for i := range keeltype.MaxCarrierEntries + 3 {
		many[fmt.Sprintf("k%02d", i)] = "v"
	}
	tests := []struct {
		name string
		in   map[string]string
		want map[string]string
	}{
		{"nil", nil, nil},
		{"empty", map[string]string{}, nil},
		{"w3c", map[string]string{"traceparent": traceparent, "tracestate": "a=1"}, map[string]string{"traceparent": traceparent, "tracestate": "a=1"}},
		{"empty name", map[string]string{"": "x", "traceparent": traceparent}, map[string]string{"traceparent": traceparent}},
		{"long name", map[string]string{strings.Repeat("n", keeltype.MaxCarrierName+1): "x"}, nil},
		{"longest name", map[string]string{strings.Repeat("n", keeltype.MaxCarrierName): "x"}, map[string]string{strings.Repeat("n", keeltype.MaxCarrierName): "x"}},
		{"long value", map[string]string{"baggage": strings.Repeat("v", keeltype.MaxCarrierValue+1)}, nil},
		{"NUL", map[string]string{"a": "x\x00y", "b\x00": "x", "c": "ok"}, map[string]string{"c": "ok"}},
		{"invalid UTF-8", map[string]string{"a": "\xff", "\xfe": "x"}, nil},
		{"empty value", map[string]string{"tracestate": ""}, map[string]string{"tracestate": ""}},
		{"too many", many, func() map[string]string {
			m := map[string]string{}
			for i := range keeltype.MaxCarrierEntries {
				m[fmt.Sprintf("k%02d", i)] = "v"
			}
			return m
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := Clean(tc.in)
			if tc.want == nil {
				if e != nil {
					t.Fatalf("Clean = %v, want nil", e.m)
				}
				return
			}
			if e == nil || !maps.Equal(e.m, tc.want) {
				t.Fatalf("Clean = %v, want %v", e, tc.want)
			}
		})
	}
}

// Metadata adds the entries under CarrierKey and keeps the caller's keys,
// and a caller's own CarrierKey wins.
func TestMetadata(t *testing.T) {
	t.Parallel()
	e := Clean(map[string]string{"traceparent": traceparent})
	tests := []struct {
		name, in string
		want     map[string]any
	}{
		{"empty", `{}`, map[string]any{keeltype.CarrierKey: map[string]any{"traceparent": traceparent}}},
		{"spaced empty", " { } ", map[string]any{keeltype.CarrierKey: map[string]any{"traceparent": traceparent}}},
		{"fields", `{"user":"u1","n":2}`, map[string]any{"user": "u1", "n": 2.0, keeltype.CarrierKey: map[string]any{"traceparent": traceparent}}},
		{"caller's key", `{"keel_trace":{"traceparent":"mine"}}`, map[string]any{keeltype.CarrierKey: map[string]any{"traceparent": "mine"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := e.Metadata(json.RawMessage(tc.in))
			if err := validate.JSON("metadata", out); err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("Metadata(%s) = %s, want %v", tc.in, out, tc.want)
			}
		})
	}
	for _, in := range []string{`[]`, `null`, `"s"`} {
		if out := e.Metadata(json.RawMessage(in)); string(out) != in {
			t.Errorf("Metadata(%s) = %s, want it unchanged", in, out)
		}
	}
	if out := (*Entries)(nil).Metadata(json.RawMessage(`{"a":1}`)); string(out) != `{"a":1}` {
		t.Errorf("nil entries changed metadata: %s", out)
	}
	big := json.RawMessage(`{"a":"` + strings.Repeat("x", validate.MaxJSONBytes-8) + `"}`)
	if out := e.Metadata(big); len(out) != len(big) {
		t.Errorf("metadata past MaxJSONBytes: %d bytes", len(out))
	}
}

// FromMetadata reads back what Metadata stored, and nothing else.
func TestFromMetadata(t *testing.T) {
	t.Parallel()
	c := map[string]string{"traceparent": traceparent, "tracestate": "a=1"}
	stored := Clean(c).Metadata(json.RawMessage(`{"user":"u1"}`))
	if got := FromMetadata(stored); !maps.Equal(got, c) {
		t.Fatalf("FromMetadata(%s) = %v", stored, got)
	}
	for _, meta := range []string{``, `{}`, `{"user":"u1"}`, `{"keel_trace":1}`, `{"keel_trace":{}}`, `{"keel_trace":{"a":1}}`} {
		if got := FromMetadata(json.RawMessage(meta)); got != nil {
			t.Errorf("FromMetadata(%s) = %v, want nil", meta, got)
		}
	}
}

// Headers adds what a message lacks, leaves the caller's map alone and
// keeps a header the caller set.
func TestHeaders(t *testing.T) {
	t.Parallel()
	e := Clean(map[string]string{"traceparent": traceparent, "tracestate": "a=1"})
	caller := map[string]string{"tracestate": "mine", "x": "y"}
	got, added := e.Headers(caller)
	want := map[string]string{"traceparent": traceparent, "tracestate": "mine", "x": "y"}
	if !added || !maps.Equal(got, want) {
		t.Fatalf("Headers = %v, %v; want %v", got, added, want)
	}
	if len(caller) != 2 {
		t.Fatalf("the caller's headers changed: %v", caller)
	}
	if _, added := e.Headers(want); added {
		t.Fatal("added to headers that hold every entry")
	}
	if got, added := e.Headers(nil); !added || len(got) != 2 {
		t.Fatalf("Headers(nil) = %v, %v", got, added)
	}
}
