package localapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/node/localapi"
)

type testEnv struct {
	n     *node.Node
	addr  string
	token string
}

// startServer runs a real node (Badger in a temp dir, libp2p on loopback)
// and its API on 127.0.0.1.
func startServer(t *testing.T) testEnv {
	t.Helper()
	cfg := node.DefaultLocalConfig()
	cfg.DataDir = t.TempDir()
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	token := "test-token-0123456789abcdef"
	s, err := localapi.New(n, localapi.Config{Addr: "127.0.0.1:0", Token: token}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return testEnv{n: n, addr: s.Addr(), token: token}
}

func (e testEnv) do(t *testing.T, method, path, token, body string) (int, localapi.ErrorBody, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+e.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb localapi.ErrorBody
	_ = json.Unmarshal(b, &eb)
	return resp.StatusCode, eb, b
}

// Bad requests get a 4xx with a JSON body saying what was wrong, and store
// nothing.
func TestBadRequests(t *testing.T) {
	e := startServer(t)
	c := localapi.NewClient(e.addr, e.token)
	ctx := context.Background()
	var lib localapi.Library
	if err := c.Do(ctx, "POST", "/v1/libraries", localapi.CreateLibraryRequest{Name: "photos"}, &lib); err != nil {
		t.Fatal(err)
	}
	recs := "/v1/libraries/" + lib.ID + "/records/tag"
	big := `{"x": "` + strings.Repeat("a", localapi.DefaultMaxBodyBytes) + `"}`
	cases := []struct {
		name, method, path, token, body string
		status                          int
		code, says                      string
	}{
		{"no token", "POST", recs, "", `{"a":1}`, 401, "unauthorized", "missing token"},
		{"wrong token", "POST", recs, "nope-nope-nope-nope", `{"a":1}`, 401, "unauthorized", "wrong token"},
		{"malformed JSON", "POST", recs, e.token, `{"a":`, 400, "bad_request", "not valid JSON"},
		{"two values", "POST", recs, e.token, `{"a":1} {"b":2}`, 400, "bad_request", "more than one JSON value"},
		{"empty body", "POST", recs, e.token, ``, 400, "bad_request", "empty"},
		{"unknown model", "POST", "/v1/libraries/" + lib.ID + "/records/spaceship", e.token, `{"a":1}`, 400, "bad_request", "unknown model type"},
		{"oversized", "POST", recs, e.token, big, 413, "too_large", "larger than"},
		{"bad record ID", "PUT", recs + "/not-a-uuid", e.token, `{"a":1}`, 400, "bad_request", "not a UUID"},
		{"unknown library", "POST", "/v1/libraries/6b3c0000-0000-4000-8000-000000000000/records/tag", e.token, `{"a":1}`, 404, "not_found", "no library"},
		{"device record", "POST", "/v1/libraries/" + lib.ID + "/records/device", e.token, `{"a":1}`, 403, "refused", "pairing"},
		{"unknown field", "POST", "/v1/libraries", e.token, `{"name":"x","colour":"red"}`, 400, "bad_request", "unknown field"},
		{"bad batch", "POST", "/v1/libraries/" + lib.ID + "/batch", e.token, `{"records":[{"model":"tag","data":{"a":1}},{"model":"nope","data":{}}]}`, 400, "bad_request", "record 1"},
		{"no endpoint", "GET", "/v1/nothing", e.token, ``, 404, "not_found", "no endpoint"},
	}
	for _, tc := range cases {
		status, eb, raw := e.do(t, tc.method, tc.path, tc.token, tc.body)
		if status != tc.status || eb.Code != tc.code || !strings.Contains(eb.Error, tc.says) {
			t.Errorf("%s: got %d %q %q, want %d %q containing %q (body %.200s)", tc.name, status, eb.Code, eb.Error, tc.status, tc.code, tc.says, raw)
		}
	}
	var list localapi.RecordList
	if err := c.Do(ctx, "GET", recs, nil, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Records) != 0 {
		t.Fatalf("refused requests stored %d records: %+v", len(list.Records), list.Records)
	}
}

// A record written through the API reads back as the same JSON, reaches
// the event stream, and deletes.
func TestRecordRoundTrip(t *testing.T) {
	e := startServer(t)
	c := localapi.NewClient(e.addr, e.token)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var lib localapi.Library
	if err := c.Do(ctx, "POST", "/v1/libraries", localapi.CreateLibraryRequest{Name: "photos"}, &lib); err != nil {
		t.Fatal(err)
	}
	events := make(chan localapi.Event, 16)
	evCtx, evCancel := context.WithCancel(ctx)
	defer evCancel()
	go func() { _ = c.Events(evCtx, lib.ID, func(ev localapi.Event) error { events <- ev; return nil }) }()
	// The stream is open once a write shows up in it; write until it does.
	value := json.RawMessage(`{"name":"holiday","n":12345678901,"f":1.5,"nested":{"list":[1,"two",null,true]}}`)
	var w localapi.Written
	var ev localapi.Event
	for ev.ID == "" {
		if err := c.Do(ctx, "POST", "/v1/libraries/"+lib.ID+"/records/tag", value, &w); err != nil {
			t.Fatal(err)
		}
		select {
		case ev = <-events:
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("no event arrived")
		}
	}
	if ev.Type != "changed" || ev.Model != "tag" {
		t.Fatalf("event %+v", ev)
	}
	var rec localapi.Record
	if err := c.Do(ctx, "GET", "/v1/libraries/"+lib.ID+"/records/tag/"+w.ID, nil, &rec); err != nil {
		t.Fatal(err)
	}
	var got, want any
	_ = json.Unmarshal(rec.Data, &got)
	_ = json.Unmarshal(value, &want)
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) || rec.Version != w.Version || rec.By != e.n.Device().String() {
		t.Fatalf("read back %s (version %s by %s), wrote %s (version %s)", gb, rec.Version, rec.By, wb, w.Version)
	}
	var del localapi.Written
	if err := c.Do(ctx, "DELETE", "/v1/libraries/"+lib.ID+"/records/tag/"+w.ID, nil, &del); err != nil {
		t.Fatal(err)
	}
	err := c.Do(ctx, "GET", "/v1/libraries/"+lib.ID+"/records/tag/"+w.ID, nil, &rec)
	if ae, ok := err.(*localapi.APIError); !ok || ae.Status != 404 {
		t.Fatalf("GET after delete: %v", err)
	}
	for {
		select {
		case ev = <-events:
			if ev.Type == "deleted" && ev.ID == w.ID {
				return
			}
		case <-ctx.Done():
			t.Fatal("no delete event")
		}
	}
}

// Metrics are served with the token, in Prometheus' text format.
func TestMetrics(t *testing.T) {
	e := startServer(t)
	if status, _, _ := e.do(t, "GET", "/metrics", "", ""); status != 401 {
		t.Fatalf("metrics without a token: %d, want 401", status)
	}
	status, _, body := e.do(t, "GET", "/metrics", e.token, "")
	if status != 200 {
		t.Fatalf("metrics: %d %s", status, body)
	}
	for _, want := range []string{"syncnode_up 1", "syncnode_catchup_pages_applied_total 0", "syncnode_live_dropped_total 0", "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
