// Package e2e holds the console's end-to-end browser test: e2e_test.go runs
// a live keel — job workers, an outbox relay, a saga engine and an event
// subscription — over a test database, serves the console over it, and runs
// console.mjs, which drives headless Chromium through playwright-core the
// way a person on call would: it opens every page, pauses and resumes a
// queue, retries a dead job, requeues a dead letter and signals a waiting
// saga, and watches each page update itself. The test then checks each
// action's effect in Postgres.
//
// It needs Node.js 20 or later and Debian's Chromium at /usr/bin/chromium
// (apt-get install nodejs npm chromium); without them it skips, unless
// KEEL_E2E=1, when it fails. playwright-core is pinned in package.json and
// package-lock.json; the test runs npm ci when node_modules is missing or
// holds another version. It never downloads a browser of its own.
//
//	KEEL_E2E=1 go test -race -count=1 ./console/e2e/
//
// Each page's full-page screenshot goes to KEEL_E2E_ARTIFACTS (default
// console/e2e/artifacts). With KEEL_E2E_SCREENSHOTS=docs the test also
// copies three of them over the README's pictures in docs/ (make
// screenshots).
package e2e
