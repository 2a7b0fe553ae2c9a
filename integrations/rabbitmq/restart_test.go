package keelrabbit_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/keelpg/keel/internal/brokertest"
)

// privateNode is a RabbitMQ node of the test's own — its own node name,
// ports, data and logs in a temporary directory — which it may restart;
// the machine's shared broker is never stopped or restarted.
//
// Debian's rabbitmq-server and rabbitmqctl, run as root, run themselves as
// the rabbitmq user (su, which keeps the RABBITMQ_* variables), so the
// directory belongs to that user, and the node and rabbitmqctl share its
// Erlang cookie. The node gets a config and an env file of its own: the
// machine's would have it listen on the shared broker's port.
type privateNode struct {
	t    *testing.T
	name string
	dir  string
	port int
}

// startPrivateNode boots a private node and waits for it, or skips the
// test when it cannot start; the node is shut down and its directory
// removed when the test ends, however it ends.
func startPrivateNode(t *testing.T) *privateNode {
	t.Helper()
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		t.Skip("no rabbitmq-server to start a private RabbitMQ node")
	}
	dir, err := os.MkdirTemp("", "keeltest-rabbit-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	n := &privateNode{t: t, name: "keeltest-" + brokertest.RandomHex() + "@localhost", dir: dir, port: freePort(t)}
	distPort := freePort(t)
	files := map[string]string{
		"rabbitmq.conf": fmt.Sprintf("listeners.tcp.1 = 127.0.0.1:%d\n", n.port),
		"rabbitmq-env.conf": "ERL_EPMD_ADDRESS=127.0.0.1\n" +
			"export ERL_FLAGS=\"-kernel inet_dist_use_interface {127,0,0,1}\"\n",
		"enabled_plugins": "[].\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"mnesia", "log"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := chownTree(dir, "rabbitmq"); err != nil {
			t.Skipf("private RabbitMQ node: %v", err)
		}
	}

	cmd := exec.Command("rabbitmq-server", "-detached")
	cmd.Env = append(os.Environ(),
		"RABBITMQ_NODENAME="+n.name,
		"RABBITMQ_NODE_PORT="+strconv.Itoa(n.port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(distPort),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+n.pidFile(),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
	)
	// The cleanup goes in before the start: a node half up is shut down
	// too.
	t.Cleanup(n.shutdown)
	// The detached node may keep the script's stdout and stderr open: they
	// go to a file, not to a pipe Run would wait on.
	outFile := filepath.Join(dir, "start.out")
	f, err := os.Create(outFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	_ = f.Close()
	if err != nil {
		out, _ := os.ReadFile(outFile)
		t.Skipf("private RabbitMQ node did not start: %v: %s", err, lastLine(out))
	}
	// await_startup fails at once while the node is not yet known to
	// epmd, so it is asked again until the node is up.
	var out []byte
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if out, err = n.ctlOutput("await_startup", "--timeout", "40"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Skipf("private RabbitMQ node %s did not start within 40s: %s", n.name, lastLine(out))
		}
	}
	return n
}

func (n *privateNode) url() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.port) }

func (n *privateNode) pidFile() string { return filepath.Join(n.dir, "node.pid") }

func (n *privateNode) ctlOutput(args ...string) ([]byte, error) {
	return exec.Command("rabbitmqctl", append([]string{"-q", "-n", n.name}, args...)...).CombinedOutput()
}

func (n *privateNode) ctl(args ...string) {
	n.t.Helper()
	if out, err := n.ctlOutput(args...); err != nil {
		n.t.Fatalf("rabbitmqctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}

// stopApp stops the RabbitMQ application, the Erlang node staying up: its
// listener closes and every client connection drops; durable queues and
// persistent messages stay on disk.
func (n *privateNode) stopApp() { n.ctl("stop_app") }

// startApp starts the application again; it returns when the broker takes
// connections.
func (n *privateNode) startApp() {
	n.ctl("start_app")
	n.ctl("await_startup", "--timeout", "40")
}

// shutdown stops the node and waits for it to end, and kills it when
// rabbitmqctl cannot.
func (n *privateNode) shutdown() {
	if _, err := n.ctlOutput("shutdown"); err == nil {
		return
	}
	b, err := os.ReadFile(n.pidFile())
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func chownTree(dir, owner string) error {
	u, err := user.Lookup(owner)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// Through a real broker restart twice — the application of a private
// RabbitMQ node stopped and started again while a relay publishes and a
// consumer consumes — every message takes effect once, in per-key order:
// the connections drop with what was in flight, the durable queue keeps
// its persistent messages, the publisher connects again at the next batch
// and the consumer on its own, and what the broker got twice is dropped by
// the inbox.
func TestBrokerRestart(t *testing.T) {
	t.Parallel()
	node := startPrivateNode(t)
	conn, err := amqp.Dial(node.url())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := "keeltest-" + brokertest.RandomHex()
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()

	outagesThrough(t, node.url(), queue, node.stopApp, node.startApp)
}
