package validate_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/internal/validate"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func TestText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, s string
		max     int
		ok      bool
	}{
		{"empty", "", 10, true},
		{"plain", "orders", 10, true},
		{"at the limit", "0123456789", 10, true},
		{"over the limit", "01234567890", 10, false},
		{"multibyte counted in bytes", "ééééé", 10, true},
		{"multibyte over", "éééééé", 10, false},
		{"no limit", strings.Repeat("x", 100_000), 0, true},
		{"NUL", "a\x00b", 10, false},
		{"invalid UTF-8", "a\xffb", 10, false},
		{"cut rune", "\xc3", 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := validate.Text("field", tc.s, tc.max)
			if (err == nil) != tc.ok {
				t.Fatalf("Text(%q): %v, want ok=%v", tc.s, err, tc.ok)
			}
			var ve *validate.Error
			if err != nil && (!errors.As(err, &ve) || ve.Field != "field") {
				t.Fatalf("error %v is not an *Error naming the field", err)
			}
		})
	}
	if err := validate.Name("name", "", 10); err == nil {
		t.Error("Name accepted an empty string")
	}
	if err := validate.Texts("tags", []string{"a", "b\x00"}, 0); err == nil || !strings.Contains(err.Error(), "tags[1]") {
		t.Errorf("Texts: %v, want an error naming tags[1]", err)
	}
}

type withSkipped struct {
	Shown  string `json:"shown"`
	Hidden string `json:"-"`
	hidden string
}

type custom struct{ raw string }

func (c custom) MarshalJSON() ([]byte, error) { return []byte(c.raw), nil }

func TestMarshal(t *testing.T) {
	t.Parallel()
	ip := net.ParseIP("10.0.0.1")
	for _, tc := range []struct {
		name string
		v    any
		ok   bool
	}{
		{"nil", nil, true},
		{"map", map[string]any{"a": []any{1, "b", nil}}, true},
		{"NUL in a value", map[string]string{"a": "x\x00"}, false},
		{"NUL in a key", map[string]string{"a\x00": "x"}, false},
		{"invalid UTF-8 in a value", map[string]string{"a": "\xff"}, false},
		{"invalid UTF-8 deep", []any{map[string]any{"x": []string{"ok", "\xfe"}}}, false},
		{"invalid UTF-8 in a struct", struct{ A *string }{A: ptr("\xff")}, false},
		{"skipped fields are not checked", withSkipped{Shown: "x", Hidden: "\xff", hidden: "\x00"}, true},
		{"bytes are base64", []byte{0, 0xff}, true},
		{"text marshaler", ip, true},
		{"custom JSON with \\u0000", custom{`"a\u0000"`}, false},
		{"custom JSON with an escaped backslash", custom{`"a\\u0000"`}, true},
		{"custom JSON with invalid UTF-8", custom{"\"\xff\""}, false},
		{"raw number too large", json.RawMessage(`1e131072`), false},
		{"does not encode", map[string]any{"f": func() {}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			raw, err := validate.Marshal("args", tc.v)
			if (err == nil) != tc.ok {
				t.Fatalf("Marshal: %s, %v; want ok=%v", raw, err, tc.ok)
			}
			var ve *validate.Error
			if err != nil && !errors.As(err, &ve) {
				t.Fatalf("error %v is not an *Error", err)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

// jsonCases are edges of what jsonb stores; each is checked against the
// server in TestJSONAgreesWithPostgres.
var jsonCases = []string{
	`{}`, `[]`, `"plain"`, `"é"`, `null`, `true`, `-0`, `0.5`,
	`"\u0000"`, `{"\u0000": 1}`, `"\\u0000"`, `"\\\u0000"`, `"\u0001"`, `"\ud800"`, `"\udc00"`, `"\ud800\udc00"`, `"\ud800\u0041"`, `"\ud800x"`, `"\uD83D\uDE00"`,
	`1e131071`, `1e131072`, `123e131069`, `123e131070`, `0.00012e131075`, `0.00012e131076`,
	`1e-16383`, `1e-16384`, `1.5e-16383`, `0.0000001e-16380`, `0e-99999999`, `1E+5`, `-1.25e-3`,
	`1e99999999999999999999`, `0e1000000`, `0e1100000000`, `-1e-9223372036854775808`, `0.` + strings.Repeat("0", 16383), `0.` + strings.Repeat("0", 16384),
	nested(validate.MaxJSONDepth), nested(validate.MaxJSONDepth + 1),
	"\"\xff\"", `{"a": [1, 2, {"b": "\u00e9"}]}`, `not json`, `{"a":1}{}`,
}

// Whatever JSON accepts, jsonb stores; what it refuses, jsonb refuses too,
// save the limits keel sets below the server's (depth).
func TestJSONAgreesWithPostgres(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	for i, raw := range jsonCases {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			checkAgainstPostgres(t, pool, []byte(raw))
		})
	}
}

func FuzzJSON(f *testing.F) {
	for _, raw := range jsonCases {
		f.Add([]byte(raw))
	}
	pool := testdb.New(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkAgainstPostgres(t, pool, raw)
	})
}

// keelStricter matches the refusals where keel's limit is below the server's.
var keelStricter = regexp.MustCompile(`nests deeper|bytes of JSON|exponent is beyond`)

func checkAgainstPostgres(t *testing.T, pool *pgxpool.Pool, raw []byte) {
	t.Helper()
	ours := validate.JSON("v", raw)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	theirs := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var ok bool
		return tx.QueryRow(ctx, "SELECT $1::text::jsonb IS NOT NULL", string(raw)).Scan(&ok)
	})
	switch {
	case ours == nil && theirs != nil:
		t.Fatalf("JSON accepted %.200q, which Postgres refuses: %v", raw, theirs)
	case ours != nil && theirs == nil && !keelStricter.MatchString(ours.Error()):
		t.Fatalf("JSON refused %.200q, which Postgres stores: %v", raw, ours)
	}
}

var constraintLimit = regexp.MustCompile(`octet_length\((\w+)\) <= (\d+)`)

// Every length CHECK in the schema names one of the package's limits, and the
// limit a field is documented with is the one its constraint enforces.
func TestLimitsMatchSchema(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	want := map[string]int{
		"jobs.unique_key": validate.MaxKey, "outbox.key": validate.MaxKey, "outbox.type": validate.MaxName,
		"inbox.consumer": validate.MaxName, "inbox.message_id": validate.MaxKey,
		"streams.stream_id": validate.MaxKey, "events.type": validate.MaxName,
		"events.causation_id": validate.MaxKey, "events.correlation_id": validate.MaxKey,
		"subscriptions.name": validate.MaxName, "subscriptions.category": validate.MaxKey,
		"saga_runs.queue": validate.MaxQueue, "saga_signals.name": validate.MaxName,
		"saga_signals.idempotency_key": validate.MaxKey, "saga_values.name": validate.MaxName,
	}
	rows, err := pool.Query(context.Background(), `
		SELECT c.conrelid::regclass::text, pg_get_constraintdef(c.oid)
		FROM pg_constraint c WHERE c.connamespace = 'keel'::regnamespace AND c.contype = 'c'`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for rows.Next() {
		var table, def string
		if err := rows.Scan(&table, &def); err != nil {
			t.Fatal(err)
		}
		for _, m := range constraintLimit.FindAllStringSubmatch(def, -1) {
			n, _ := strconv.Atoi(m[2])
			got[strings.TrimPrefix(table, "keel.")+"."+m[1]] = n
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for field, limit := range want {
		if got[field] != limit {
			t.Errorf("%s: the schema allows %d bytes, the Go check %d", field, got[field], limit)
		}
	}
	for field := range got {
		if _, ok := want[field]; !ok {
			t.Errorf("%s has a length CHECK this test does not know", field)
		}
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "boom", "boom"},
		{"NUL", "a\x00b", "a\uFFFDb"},
		{"invalid UTF-8", "a\xff\xfeb", "a\uFFFDb"},
		{"at the limit", strings.Repeat("x", validate.MaxErrorText), strings.Repeat("x", validate.MaxErrorText)},
	} {
		if got := validate.ErrorText(tc.in); got != tc.want {
			t.Errorf("%s: ErrorText(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
	long := validate.ErrorText(strings.Repeat("é", validate.MaxErrorText))
	if len(long) > validate.MaxErrorText || !strings.HasSuffix(long, "bytes cut)") || validate.Text("e", long, 0) != nil {
		t.Errorf("a long error is %d bytes, ends %q", len(long), long[len(long)-20:])
	}
}
