package keelnats_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	keelnats "github.com/keelpg/keel/integrations/nats"
	"github.com/keelpg/keel/internal/brokertest"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/outbox"
)

// privateServer is a nats-server with JetStream of the test's own, which
// it may kill and start again; the machine's shared server is never
// restarted.
type privateServer struct {
	t    *testing.T
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
}

// startPrivateServer starts a nats-server on a free port with its store in
// a temporary directory, or skips the test when there is no nats-server
// binary to start.
func startPrivateServer(t *testing.T) *privateServer {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		bin, err = exec.LookPath("/usr/sbin/nats-server")
	}
	if err != nil {
		t.Skip("no nats-server binary to start a private NATS server")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &privateServer{t: t, bin: bin, port: port, dir: t.TempDir()}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *privateServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

func (s *privateServer) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-js", "-sd", s.dir)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	brokertest.WaitFor(s.t, 30*time.Second, "the private NATS server to answer", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.port))
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
}

// kill ends the server with SIGKILL: nothing is flushed or said goodbye.
func (s *privateServer) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Through a NATS server killed and started again twice while a relay
// publishes and a consumer consumes, every message arrives; what was
// published twice (acks lost with the server) is dropped by JetStream's
// dedup, and what was delivered twice by the inbox; per-key order holds.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	srv := startPrivateServer(t)
	nc, err := nats.Connect(srv.url(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.Timeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var stream jetstream.Stream
	brokertest.WaitFor(t, 30*time.Second, "JetStream to take a stream", func() bool {
		stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "RESTART", Subjects: []string{"restart.>"}, Storage: jetstream.FileStorage})
		return err == nil
	})
	source := orderedConsumer(t, stream, 2*time.Second)

	pool := testdb.New(t)
	brokertest.CreateEffects(t, pool)
	pub, err := keelnats.NewPublisher(js, keelnats.PublisherConfig{Subject: keelnats.PrefixSubject("restart"), AckTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := keelnats.NewConsumer(inbox, source, func(ctx context.Context, tx pgx.Tx, m keelnats.Message) error {
		return brokertest.WriteEffect(ctx, tx, m.ID, m.Key, m.Payload)
	}, keelnats.ConsumerConfig{RetryPolicy: keeltype.ExponentialBackoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	want := brokertest.Outages(t, brokertest.Outage{
		Pool: pool, Publisher: pub, Consumer: consumer, Topic: "orders",
		Down: func() {
			srv.kill()
			brokertest.WaitFor(t, 30*time.Second, "the client to notice", func() bool { return !nc.IsConnected() })
		},
		Up: srv.start,
	})
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(want) {
		t.Errorf("the stream holds %d messages, want %d: JetStream's dedup let a republished one through", info.State.Msgs, want)
	}
}
