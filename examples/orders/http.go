package orders

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5"
)

func fsSub() (fs.FS, error) { return fs.Sub(migrationFiles, "migrations") }

// Payment is the body of POST /orders/{id}/payment.
type Payment struct {
	Confirmed *bool `json:"confirmed"`
}

// Handler serves POST /orders and POST /orders/{id}/payment.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", s.placeOrder)
	mux.HandleFunc("POST /orders/{id}/payment", s.payment)
	return mux
}

func (s *Service) placeOrder(w http.ResponseWriter, r *http.Request) {
	var o NewOrder
	if err := decode(r, &o); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if _, err := o.Validate(); err != nil { // before any transaction begins
		writeError(w, http.StatusBadRequest, err)
		return
	}
	var p Placed
	err := pgx.BeginFunc(r.Context(), s.pool, func(tx pgx.Tx) error {
		var err error
		p, err = s.Place(r.Context(), tx, o)
		return err
	})
	var invalid *ValidationError
	switch {
	case errors.As(err, &invalid):
		writeError(w, http.StatusBadRequest, err)
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	s.observe("order placed", p.ID, fmt.Sprintf("%s, %d cents: order row, %s on %s, outbox message on %q, %s job, %s run %s — one commit",
		p.Customer, p.TotalCents, EventPlaced, StreamID(p.ID), Topic, ConfirmationEmail{}.Kind(), Workflow, RunID(p.ID)))
	writeJSON(w, http.StatusCreated, p)
}

func (s *Service) payment(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, fmt.Errorf("order id %q is not a positive integer", r.PathValue("id")))
		return
	}
	var pay Payment
	if err := decode(r, &pay); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if pay.Confirmed == nil {
		writeError(w, http.StatusBadRequest, errors.New(`the body needs "confirmed": true or false`))
		return
	}
	err = pgx.BeginFunc(r.Context(), s.pool, func(tx pgx.Tx) error {
		return s.Pay(r.Context(), tx, id, *pay.Confirmed)
	})
	switch {
	case errors.Is(err, ErrNoOrder):
		writeError(w, http.StatusNotFound, err)
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	s.observe("payment signalled", id, fmt.Sprintf("%s=%t to run %s", PaymentSignal, *pay.Confirmed, RunID(id)))
	writeJSON(w, http.StatusAccepted, map[string]any{"order": id, "confirmed": *pay.Confirmed})
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("the body is not the expected JSON: %w", err)
	}
	return nil
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
