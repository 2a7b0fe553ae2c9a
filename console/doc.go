// Package console is keel's web console: the pages a person on call opens
// when something is stuck. It shows and acts on everything keel keeps in
// Postgres — jobs and queues, the outbox and its dead letters, saga runs and
// their steps, events, streams and subscriptions.
//
// Run it with the keel command,
//
//	keel ui --addr 127.0.0.1:8080
//
// or mount it in a service, under a router of its own:
//
//	h, err := console.New(pool, console.Config{Prefix: "/ops/keel", BearerToken: token})
//	mux.Handle("/ops/keel/", h)
//
// # Pages
//
//   - Overview (/): what `keel stats` prints — queues, stuck and dead jobs,
//     the outbox, sagas per workflow, subscriptions — and the last hour
//     minute by minute: jobs finished, jobs not yet finished, outbox
//     messages delivered.
//   - Jobs (/jobs, /jobs/{id}): filter by queue, state and kind; find by id
//     or by args; a job's every attempt with its error and stack, progress
//     and output, and a workflow's dependency graph; retry, cancel, delete.
//   - Queues (/queues): counts, the oldest available job; pause and resume.
//   - Outbox (/outbox, /outbox/{id}): backlog per topic, dead letters with
//     their last error; requeue one, or every dead letter of a topic.
//   - Sagas (/sagas, /sagas/{id}): runs by status; a run's timeline of steps,
//     waits, compensations and children, its input and output; signal,
//     cancel, resume, fork.
//   - Events (/events, /events/streams/{id}, /events/subscriptions): the
//     feed, a stream's events, subscriptions with their lag and parked
//     error; reset and resume.
//
// Every page is also JSON: GET /api and the page's path (/api/jobs?state=
// discarded) answers the value the page shows, and POST /api and an action's
// path runs the action and answers JSON. An open page updates itself every
// Config.RefreshInterval without a reload.
//
// # Cheap on the database
//
// A page polled every two seconds by a few people must not cost more as
// history grows. Every query the console runs reads through an index, and
// its cost follows the work in flight (jobs not final, messages pending,
// runs not finished), the last hour, or a page of 50 rows — never the
// history of finished jobs, delivered messages or events. So the overview
// counts final jobs, delivered messages and finished runs for the last hour
// only, and lists page by keyset (an "older" link), never by OFFSET. The
// overview's charts cost what the last hour holds; they are read at most
// once every 15 seconds, however many pages are open. bench/CONSOLE.md in
// keel's repository gives each page's queries and their cost on tables of
// 1,000,000 jobs and 1,000,000 events (BenchmarkConsolePages).
//
// # Safety
//
// Config.ReadOnly refuses every action and leaves their buttons out.
// Config.BasicAuth and Config.BearerToken restrict who may look; without
// either, bind the console to a loopback address. Every action needs a CSRF
// token (a cookie the pages repeat in their forms), except a request that
// carries the bearer token, which a browser never adds by itself;
// cross-origin requests are refused outright. A destructive action (cancel,
// delete, pause, reset, requeue of many) asks first: the page's script
// confirms, and a form posted without the confirmation gets a page that
// asks. Every action goes through keel's public Go API, the same calls the
// keel command makes, so the console can do nothing the API cannot.
//
// # Why server-rendered templates
//
// The pages are Go html/template files and one small script, embedded in
// the binary with go:embed: `go install` gives a working console, with no
// Node at run time and no build step whose output must be kept current. The
// server renders every page, so a page works without its script, and the
// script does only two things: it fetches the page's main section again
// every RefreshInterval and swaps it in (skipped while the person types in
// a form), and it asks before a destructive action. Charts and the workflow
// graph are SVG drawn by the server. A single-page app would add a build,
// a second copy of every view's logic and a client state to keep right,
// for pages that are tables, a timeline and a few buttons.
package console
