package keelrabbit

import (
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// confirmer settles each message published on a channel in confirm mode:
// delivered when the broker acked it, failed when it nacked or returned it
// or the channel closed first.
//
// The broker sends a mandatory message's basic.return before its
// basic.ack, and the client hands both to unbuffered channels from one
// reader goroutine; one goroutine receiving both therefore always has a
// message's return before its confirm.
type confirmer struct {
	mu      sync.Mutex
	pending map[uint64]*awaited // by delivery tag
	done    chan struct{}       // closed once the channel closed and every pending message failed
}

type awaited struct {
	id, exchange, routingKey string
	result                   chan error // buffered: settling never blocks
}

func newConfirmer(ch *amqp.Channel) *confirmer {
	c := &confirmer{pending: map[uint64]*awaited{}, done: make(chan struct{})}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation))
	returns := ch.NotifyReturn(make(chan amqp.Return))
	go c.run(confirms, returns)
	return c
}

// expect registers the message about to be published with tag and returns
// where its result will come.
func (c *confirmer) expect(tag uint64, id, exchange, routingKey string) <-chan error {
	a := &awaited{id: id, exchange: exchange, routingKey: routingKey, result: make(chan error, 1)}
	c.mu.Lock()
	c.pending[tag] = a
	c.mu.Unlock()
	return a.result
}

// forget drops a registration whose publish failed.
func (c *confirmer) forget(tag uint64) {
	c.mu.Lock()
	delete(c.pending, tag)
	c.mu.Unlock()
}

func (c *confirmer) run(confirms <-chan amqp.Confirmation, returns <-chan amqp.Return) {
	defer close(c.done)
	returned := map[string]amqp.Return{} // by message id, until its confirm
	for confirms != nil || returns != nil {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			returned[r.MessageId] = r
		case conf, ok := <-confirms:
			if !ok {
				confirms = nil
				continue
			}
			c.settle(conf, returned)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for tag, a := range c.pending {
		a.result <- fmt.Errorf("%w: message %s", ErrConnectionLost, a.id)
		delete(c.pending, tag)
	}
}

func (c *confirmer) settle(conf amqp.Confirmation, returned map[string]amqp.Return) {
	c.mu.Lock()
	a := c.pending[conf.DeliveryTag]
	delete(c.pending, conf.DeliveryTag)
	c.mu.Unlock()
	if a == nil {
		return
	}
	r, wasReturned := returned[a.id]
	delete(returned, a.id)
	switch {
	case !conf.Ack:
		a.result <- fmt.Errorf("%w: message %s", ErrNacked, a.id)
	case wasReturned:
		a.result <- &ReturnedError{ID: a.id, Exchange: a.exchange, RoutingKey: a.routingKey, Code: r.ReplyCode, Text: r.ReplyText}
	default:
		a.result <- nil
	}
}
