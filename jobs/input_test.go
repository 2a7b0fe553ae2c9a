package jobs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// unencodable fails to encode as JSON.
type unencodable struct{}

func (unencodable) Kind() string                 { return "unencodable" }
func (unencodable) MarshalJSON() ([]byte, error) { return nil, errors.New("cannot encode") }

// otherShape is a kind whose args are a number, so other JSON does not decode.
type otherShape int

func (otherShape) Kind() string { return "shape" }

// wrongShape has the same kind as otherShape but encodes as an object.
type wrongShape struct {
	X string `json:"x"`
}

func (wrongShape) Kind() string { return "shape" }

// unregistered is a kind no worker handles.
type unregistered struct{}

func (unregistered) Kind() string { return "unregistered" }

// defaulted carries its own insert options.
type defaulted struct{}

func (defaulted) Kind() string { return "test" }
func (defaulted) InsertOpts() InsertOpts {
	return InsertOpts{Queue: "defaults", Priority: 3, MaxAttempts: 4, Tags: []string{"kind"}}
}

func TestInsertRejectsBadInputWritingNothing(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 4)
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error { return nil }, nil)
	c, err := NewClient(pool, Config{Workers: w})
	if err != nil {
		t.Fatal(err)
	}
	bare := insertOnly(t, pool)
	long := strings.Repeat("q", 129)
	for _, tc := range []struct {
		name   string
		client *Client
		args   JobArgs
		opts   *InsertOpts
		want   error
	}{
		{"args do not encode", bare, unencodable{}, nil, ErrEncode},
		{"unknown kind", c, unregistered{}, nil, ErrUnknownKind},
		{"nil args", c, nil, nil, ErrInvalidOptions},
		{"priority", c, testArgs{}, &InsertOpts{Priority: 5}, ErrInvalidOptions},
		{"negative delay", c, testArgs{}, &InsertOpts{Delay: -time.Second}, ErrInvalidOptions},
		{"run-at and delay", c, testArgs{}, &InsertOpts{Delay: time.Second, RunAt: time.Now()}, ErrInvalidOptions},
		{"max attempts", c, testArgs{}, &InsertOpts{MaxAttempts: -1}, ErrInvalidOptions},
		{"timeout", c, testArgs{}, &InsertOpts{Timeout: -time.Second}, ErrInvalidOptions},
		{"run condition", c, testArgs{}, &InsertOpts{RunWhen: "sometimes"}, ErrInvalidOptions},
		{"queue name", c, testArgs{}, &InsertOpts{Queue: long}, ErrInvalidOptions},
		{"metadata", c, testArgs{}, &InsertOpts{Metadata: map[string]any{"f": func() {}}}, ErrInvalidOptions},
		{"unknown dependency", c, testArgs{}, &InsertOpts{DependsOn: []int64{1 << 40}}, ErrInvalidOptions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.client.Insert(context.Background(), pool, tc.args, tc.opts); !errors.Is(err, tc.want) {
				t.Fatalf("Insert: %v, want %v", err, tc.want)
			}
			many := []InsertManyParams{{Args: testArgs{N: 1}}, {Args: tc.args, Opts: tc.opts}}
			if _, err := tc.client.InsertMany(context.Background(), pool, many); !errors.Is(err, tc.want) {
				t.Fatalf("InsertMany: %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := c.InsertMany(context.Background(), pool, []InsertManyParams{{Args: testArgs{}, Opts: &InsertOpts{UniqueKey: "k"}}}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("InsertMany with a unique key: %v", err)
	}
	if n, err := countState(c, ""); err != nil || n != 0 {
		t.Fatalf("%d jobs written (%v)", n, err)
	}
}

func TestInsertOptionsAndKindDefaults(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 4)
	c := insertOnly(t, pool)
	ctx := context.Background()
	row := insert(t, c, defaulted{}, &InsertOpts{Priority: 2, Metadata: map[string]any{"by": "test"}})
	if row.Queue != "defaults" || row.Priority != 2 || row.MaxAttempts != 4 || row.Tags[0] != "kind" ||
		string(row.Metadata) != `{"by": "test"}` || row.State != StateAvailable {
		t.Fatalf("row: %+v", row)
	}
	later := insert(t, c, testArgs{}, &InsertOpts{Delay: time.Hour})
	if later.State != StateScheduled || time.Until(later.RunAt) < 59*time.Minute {
		t.Fatalf("delayed job: %s at %s", later.State, later.RunAt)
	}
	if _, err := c.JobGet(ctx, 1<<40); !errors.Is(err, ErrNotFound) {
		t.Fatalf("JobGet of no job: %v", err)
	}
}

func TestBadConfig(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 1)
	w := NewWorkers()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"rescue not after heartbeat", Config{Workers: w, HeartbeatInterval: time.Minute, RescueAfter: time.Second}},
		{"negative workers", Config{Workers: w, Queues: map[string]QueueConfig{"q": {MaxWorkers: -1}}}},
		{"empty queue name", Config{Workers: w, Queues: map[string]QueueConfig{"": {}}}},
		{"negative interval", Config{Workers: w, FetchCooldown: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewClient(pool, tc.cfg); !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("got %v", err)
			}
		})
	}
	if _, err := NewClient(nil, Config{}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("nil pool: %v", err)
	}
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error { return nil }, nil)
	if err := AddWorkerSafely(w, func(ctx context.Context, j *Job[testArgs]) error { return nil }, nil); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("kind added twice: %v", err)
	}
	if err := insertOnly(t, pool).Start(context.Background()); !errors.Is(err, ErrNoWorkers) {
		t.Fatalf("start without workers: %v", err)
	}
}

func TestRunTimeFailuresAreRecorded(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[otherShape]) error { return nil }, nil)
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error { panic("handler bug") }, nil)
	c := startClient(t, pool, fastConfig(w))
	inserter := insertOnly(t, pool)
	for _, tc := range []struct {
		name      string
		args      JobArgs
		want      string
		wantStack bool
	}{
		{"args do not decode", wrongShape{X: "y"}, "job args do not decode", false},
		{"unknown kind", unregistered{}, "unknown job kind", false},
		{"panic", testArgs{}, "handler panicked: handler bug", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := insert(t, inserter, tc.args, &InsertOpts{MaxAttempts: 2})
			row := waitState(t, c, job.ID, StateDiscarded)
			if len(row.Errors) != 2 || !strings.Contains(row.Errors[1].Error, tc.want) {
				t.Fatalf("errors %+v, want %q", row.Errors, tc.want)
			}
			if hasStack := strings.Contains(row.Errors[0].Stack, "runHandler"); hasStack != tc.wantStack {
				t.Fatalf("stack %q", row.Errors[0].Stack)
			}
		})
	}
}
