package console_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/console"
)

// A service mounts the console under a path of its own router. A program
// (or curl) authenticated with the bearer token reads any page as JSON under
// /api and runs actions without a CSRF token.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	h, err := console.New(pool, console.Config{Prefix: "/ops/keel", BearerToken: "s3cret"})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ops/keel/", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	call := func(method, path string) {
		req, _ := http.NewRequest(method, srv.URL+"/ops/keel"+path, nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		fmt.Printf("%s %s: %d %s", method, path, res.StatusCode, body)
	}
	call(http.MethodPost, "/api/queues/reports/pause")
	call(http.MethodPost, "/api/queues/reports/resume")
	// Output:
	// POST /api/queues/reports/pause: 200 {
	//   "queue": "reports",
	//   "paused": true
	// }
	// POST /api/queues/reports/resume: 200 {
	//   "queue": "reports",
	//   "paused": false
	// }
}
