package main

import (
	"strings"
	"testing"

	"github.com/keelpg/keel/internal/testdb"
)

func TestPartition(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": testdb.NewURL(t)}
	for _, tc := range []struct {
		args   []string
		code   int
		want   []string
		absent []string
	}{
		{[]string{"partition", "list"}, exitOK, []string{"TABLE", "PARTITION"}, nil},
		{[]string{"partition", "jobs", "--rows", "10"}, exitUsage, nil, nil},
		{[]string{"partition", "events"}, exitUsage, nil, nil},
		{[]string{"partition", "jobs", "--rows", "1000"}, exitOK, []string{"jobs_history", "FROM (MINVALUE)", "jobs_4"}, nil},
		{[]string{"partition", "outbox", "--rows", "5000"}, exitOK, []string{"jobs_history", "outbox_history"}, nil},
		{[]string{"--json", "partition", "list"}, exitOK, []string{`"name": "outbox_history"`}, nil},
		{[]string{"schema"}, exitOK, []string{"jobs", "outbox", "job_unique_keys"}, []string{"jobs_history", "outbox_default"}},
	} {
		code, out, errOut := keel(t, env, tc.args...)
		if code != tc.code {
			t.Errorf("keel %v: exit %d, want %d; stderr %q", tc.args, code, tc.code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("keel %v: stdout lacks %q:\n%s", tc.args, w, out)
			}
		}
		for _, a := range tc.absent {
			if strings.Contains(out, a) {
				t.Errorf("keel %v: stdout shows %q:\n%s", tc.args, a, out)
			}
		}
	}
}
