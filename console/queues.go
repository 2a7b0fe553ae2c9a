package console

import (
	"net/http"
	"strings"

	"github.com/keelpg/keel/internal/db"
)

// QueueAction is what pausing or resuming a queue answers.
type QueueAction struct {
	Queue  string `json:"queue"`
	Paused bool   `json:"paused"`
}

// Queues is what the queues page shows.
type Queues struct {
	Queues []Queue `json:"queues"`
}

func (h *Handler) queueList(r *http.Request) (any, error) {
	var v Queues
	err := h.serially(r.Context(), func(q *db.Queries) (err error) {
		v.Queues, err = readQueues(r.Context(), q)
		return err
	})
	return v, err
}

func queueName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if strings.TrimSpace(name) == "" {
		return "", errorf(http.StatusBadRequest, "no queue name")
	}
	return name, nil
}

func (h *Handler) queuePause(r *http.Request) (any, string, error) {
	name, err := queueName(r)
	if err != nil {
		return nil, "", err
	}
	if err := h.jobs.QueuePause(r.Context(), name); err != nil {
		return nil, "", err
	}
	return QueueAction{name, true}, "/queues", nil
}

func (h *Handler) queueResume(r *http.Request) (any, string, error) {
	name, err := queueName(r)
	if err != nil {
		return nil, "", err
	}
	if err := h.jobs.QueueResume(r.Context(), name); err != nil {
		return nil, "", err
	}
	return QueueAction{name, false}, "/queues", nil
}
