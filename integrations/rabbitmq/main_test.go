package keelrabbit_test

import (
	"cmp"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/keelpg/keel/internal/brokertest"
)

// brokerURL is the machine's shared RabbitMQ, which the examples and the
// tests use: RABBITMQ_URL, else amqp://guest:guest@127.0.0.1:5672/.
func brokerURL() string {
	return cmp.Or(os.Getenv("RABBITMQ_URL"), "amqp://guest:guest@127.0.0.1:5672/")
}

// TestMain gives the tests their databases. When the broker cannot be
// reached, it runs no example (they need it) and says so once; the tests
// then skip one by one.
func TestMain(m *testing.M) {
	brokertest.Main(m, "keelrabbit: RabbitMQ at "+brokerURL(), func() error {
		conn, err := amqp.Dial(brokerURL())
		if err == nil {
			_ = conn.Close()
		}
		return err
	})
}

// sharedBroker returns the broker's URL, or skips the test when it cannot
// be reached.
func sharedBroker(t *testing.T) string {
	t.Helper()
	conn, err := amqp.Dial(brokerURL())
	if err != nil {
		t.Skipf("RabbitMQ at %s unreachable: %v", brokerURL(), err)
	}
	_ = conn.Close()
	return brokerURL()
}

// channel opens a channel on the shared broker for the test's own use.
func channel(t *testing.T) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(sharedBroker(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// testQueue declares a durable queue of the test's own and deletes it when
// the test ends.
func testQueue(t *testing.T) string {
	t.Helper()
	ch := channel(t)
	name := "keeltest-" + brokertest.RandomHex()
	if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ch, err := amqpChannel(); err == nil {
			_, _ = ch.QueueDelete(name, false, false, false)
			_ = ch.Close()
		}
	})
	return name
}

// amqpChannel opens a channel for a cleanup, after the test's own
// connections closed.
func amqpChannel() (*amqp.Channel, error) {
	conn, err := amqp.Dial(brokerURL())
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	go func() { <-ch.NotifyClose(make(chan *amqp.Error, 1)); _ = conn.Close() }()
	return ch, nil
}

// queueDepth is how many messages wait in the queue.
func queueDepth(t *testing.T, ch *amqp.Channel, queue string) int {
	t.Helper()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

// proxy is a TCP proxy between the tests' clients and the broker. Cutting
// it closes every connection through it at once, with what was in flight,
// and refuses new ones until it is restored: to the clients, the broker is
// gone, as in a restart, and the broker sees its clients vanish.
type proxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, target: target, addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	go p.accept(ln)
	t.Cleanup(p.cut)
	return p
}

// url is the broker's URL through the proxy.
func (p *proxy) url() string { return "amqp://guest:guest@" + p.addr + "/" }

func (p *proxy) accept(ln net.Listener) {
	for {
		client, err := ln.Accept()
		if err != nil {
			return
		}
		upstream, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		if p.ln != ln {
			p.mu.Unlock()
			_ = client.Close()
			_ = upstream.Close()
			return
		}
		p.conns[client], p.conns[upstream] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go pipe(client, upstream)
		go pipe(upstream, client)
	}
}

func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// cut closes the listener and every connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// restore listens again on the same address.
func (p *proxy) restore() {
	p.t.Helper()
	var ln net.Listener
	brokertest.WaitFor(p.t, 30*time.Second, "the proxy's port", func() bool {
		var err error
		ln, err = net.Listen("tcp", p.addr)
		return err == nil
	})
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go p.accept(ln)
}
