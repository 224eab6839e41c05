package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node/localapi"
)

// TestBadInput sends what a confused or hostile client sends, to the API and
// to the CLI: every answer is a 4xx with a JSON body {"error", "code"} that
// says what was wrong, every CLI exit code is non-zero with a message, and
// nothing is stored.
func TestBadInput(t *testing.T) {
	h := newHarness(t, time.Minute)
	a := h.newNode("alpha", nodeOpts{})
	a.start()
	lib := a.createLibrary("edges")
	// The one record that is stored: everything after it must leave the
	// library as it is.
	good := uuid.NewString()
	a.mustCLI("put", "tag", "--id", good, `{"name":"kept"}`)

	big := append(append([]byte(`{"name":"`), bytes.Repeat([]byte("x"), 5<<20)...), `"}`...)
	// A body under the API's 4 MiB but a payload over the node's 1 MiB.
	bigRecord := append(append([]byte(`{"name":"`), bytes.Repeat([]byte("y"), 2<<20)...), `"}`...)
	bearer := "Bearer " + a.token
	tagPath := libPath(lib, "records", "tag")
	cases := []struct {
		name, method, path string
		body               []byte
		auth               string
		status             int
		code, says         string
	}{
		{"malformed JSON", "POST", tagPath, []byte(`{"name": "red"`), bearer, http.StatusBadRequest, "bad_request", "not valid JSON"},
		{"two JSON values", "PUT", tagPath + "/" + uuid.NewString(), []byte(`{} {}`), bearer, http.StatusBadRequest, "bad_request", "more than one JSON value"},
		{"empty body", "POST", tagPath, []byte{}, bearer, http.StatusBadRequest, "bad_request", "empty"},
		{"unknown model type", "POST", libPath(lib, "records", "nosuchmodel"), []byte(`{"a":1}`), bearer, http.StatusBadRequest, "bad_request", "unknown model type"},
		{"record ID not a UUID", "PUT", tagPath + "/not-a-uuid", []byte(`{"a":1}`), bearer, http.StatusBadRequest, "bad_request", "not a UUID"},
		{"device records are pairing's", "POST", libPath(lib, "records", "device"), []byte(`{"a":1}`), bearer, http.StatusForbidden, "refused", "pairing"},
		{"oversized body", "POST", tagPath, big, bearer, http.StatusRequestEntityTooLarge, "too_large", "larger than"},
		{"record over the payload limit", "POST", tagPath, bigRecord, bearer, http.StatusRequestEntityTooLarge, "too_large", "1 MiB"},
		{"oversized batch", "POST", libPath(lib, "batch"), big, bearer, http.StatusRequestEntityTooLarge, "too_large", "larger than"},
		{"missing token", "POST", tagPath, []byte(`{"a":1}`), "", http.StatusUnauthorized, "unauthorized", "missing token"},
		{"wrong token", "POST", tagPath, []byte(`{"a":1}`), "Bearer " + strings.Repeat("0", 64), http.StatusUnauthorized, "unauthorized", "wrong token"},
		{"metrics without a token", "GET", "/metrics", nil, "", http.StatusUnauthorized, "unauthorized", "missing token"},
		{"events with a wrong token", "GET", libPath(lib, "events"), nil, "Bearer nope", http.StatusUnauthorized, "unauthorized", "wrong token"},
		{"token without Bearer", "POST", tagPath, []byte(`{"a":1}`), a.token, http.StatusUnauthorized, "unauthorized", "wrong token"},
		{"unknown library", "POST", libPath(uuid.NewString(), "records", "tag"), []byte(`{"a":1}`), bearer, http.StatusNotFound, "not_found", "no library"},
		{"library not a UUID", "GET", libPath("photos"), nil, bearer, http.StatusBadRequest, "bad_request", "not a UUID"},
		{"batch with one bad record", "POST", libPath(lib, "batch"),
			[]byte(`{"records":[{"model":"tag","data":{"n":1}},{"model":"nosuchmodel","data":{}},{"model":"album","data":{"n":2}}]}`),
			bearer, http.StatusBadRequest, "bad_request", "record 1: unknown model type"},
		{"batch with malformed data", "POST", libPath(lib, "batch"),
			[]byte(`{"records":[{"model":"tag","data":{"n":1}},{"model":"tag","data":{"n":}}]}`), bearer, http.StatusBadRequest, "bad_request", "not the expected JSON"},
		{"batch with an unknown field", "POST", libPath(lib, "batch"), []byte(`{"records":[],"extra":1}`), bearer, http.StatusBadRequest, "bad_request", "unknown field"},
		{"create library, malformed", "POST", "/v1/libraries", []byte(`{"name":`), bearer, http.StatusBadRequest, "bad_request", "not the expected JSON"},
		{"join with a malformed code", "POST", "/v1/libraries/join", []byte(`{"code":"syncnode1-garbage"}`), bearer, http.StatusBadRequest, "bad_request", "malformed invite code"},
		{"no such endpoint", "GET", "/v1/nothing", nil, bearer, http.StatusNotFound, "not_found", "no endpoint"},
	}
	for _, c := range cases {
		status, body, err := a.call(c.method, c.path, c.body, c.auth)
		if err != nil {
			t.Errorf("%s: %s %s: %v", c.name, c.method, c.path, err)
			continue
		}
		var eb localapi.ErrorBody
		if err := json.Unmarshal(body, &eb); err != nil {
			t.Errorf("%s: answer %d is not a JSON error body (%v): %q", c.name, status, err, body)
			continue
		}
		t.Logf("%s: %d %s: %s", c.name, status, eb.Code, eb.Error)
		if status != c.status || eb.Code != c.code || eb.Error == "" || !strings.Contains(eb.Error, c.says) {
			t.Errorf("%s: got %d %+v, want %d code %q and an error saying %q", c.name, status, eb, c.status, c.code, c.says)
		}
	}

	// Nothing of the above was stored: the library holds the one tag, no
	// album, no other record.
	for model, want := range map[string]int{"tag": 1, "album": 0, "location": 0, "entry": 0, "volume": 0, "user_metadata": 0, "device": 1} {
		recs, err := a.listAll(lib, model)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != want {
			t.Errorf("after bad input the library holds %d %s records, want %d: %v", len(recs), model, want, recs)
		}
	}
	var rec localapi.Record
	a.cliJSON(&rec, "get", "tag", good)
	if compact(rec.Data) != `{"name":"kept"}` {
		t.Errorf("the good tag became %s", rec.Data)
	}

	// The CLI: exit 1 when the daemon refuses or fails, 2 for a wrong
	// command line, always with a message on stderr.
	clis := []struct {
		name  string
		stdin []byte
		args  []string
		code  int
		says  string
	}{
		{"malformed JSON", nil, []string{"put", "tag", `{"name":`}, 2, "not valid JSON"},
		{"malformed JSON on stdin", []byte(`{"name":`), []string{"put", "tag", "-"}, 2, "not valid JSON"},
		{"oversized value on stdin", big, []string{"put", "tag", "-"}, 2, "1 MiB"},
		{"record over the limit on stdin", bigRecord, []string{"put", "tag", "-"}, 1, "1 MiB"},
		{"unknown model type", nil, []string{"put", "nosuchmodel", `{}`}, 1, "`syncnode models` lists them"},
		{"get of an unknown ID", nil, []string{"get", "tag", uuid.NewString()}, 1, "no such record"},
		{"get of a bad ID", nil, []string{"get", "tag", "nope"}, 1, "not a UUID"},
		{"unknown library", nil, []string{"put", "--library", "nosuchlib", "tag", `{}`}, 1, "no library"},
		{"wrong token", nil, []string{"--token", strings.Repeat("0", 64), "status"}, 1, "wrong token"},
		{"unknown command", nil, []string{"frobnicate"}, 2, "unknown command"},
		{"unknown flag", nil, []string{"status", "--frobnicate"}, 2, "unknown flag"},
		{"missing argument", nil, []string{"get", "tag"}, 2, "arg"},
		{"bad flag value", nil, []string{"run", "--mdns=perhaps"}, 2, "perhaps"},
	}
	for _, c := range clis {
		var stdin *bytes.Reader
		if c.stdin != nil {
			stdin = bytes.NewReader(c.stdin)
		} else {
			stdin = bytes.NewReader(nil)
		}
		r := a.cliIn(stdin, c.args...)
		t.Logf("CLI, %s: exit %d: %s", c.name, r.code, strings.TrimSpace(r.stderr))
		if r.code != c.code || strings.TrimSpace(r.stderr) == "" || !strings.Contains(r.stderr, c.says) {
			t.Errorf("%s: want exit %d and a message saying %q, got %s", c.name, c.code, c.says, r)
		}
		// Words for the command line, not the API's.
		for _, api := range []string{"the body", "/v1/", ": node: ", ": pairing: "} {
			if strings.Contains(r.stderr, api) {
				t.Errorf("%s: the message speaks of %q: %s", c.name, api, r.stderr)
			}
		}
	}
	// A CLI with no daemon behind its data directory.
	other := h.newNode("nobody", nodeOpts{})
	if r := other.cli("status"); r.code != 1 || !strings.Contains(r.stderr, "no syncnode daemon") {
		t.Errorf("status without a daemon: want exit 1 saying no daemon runs, got %s", r)
	}
	if r := other.cli("--token", strings.Repeat("0", 64), "--api", "127.0.0.1:1", "status"); r.code != 1 || !strings.Contains(r.stderr, "no syncnode daemon answers") {
		t.Errorf("status with nothing at --api: want exit 1 saying no daemon answers, got %s", r)
	}
	for model, want := range map[string]int{"tag": 1, "album": 0} {
		recs, err := a.listAll(lib, model)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != want {
			t.Errorf("after the CLI's bad input the library holds %d %s records, want %d", len(recs), model, want)
		}
	}
	// The daemon is still well.
	if st := a.status(); len(st.Libraries) != 1 {
		t.Fatalf("status after bad input: %+v", st)
	}
}
