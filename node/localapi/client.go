package localapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Client calls a node's local API.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// NewClient returns a client of the API at addr ("127.0.0.1:7655" or
// "unix:/path") with the given token.
func NewClient(addr, token string) *Client {
	c := &Client{base: "http://" + addr, token: token, hc: &http.Client{}}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		c.base = "http://syncnode"
		c.hc.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
	}
	return c
}

// APIError is an error answer of the API.
type APIError struct {
	Status int
	ErrorBody
}

// Error returns the message of the answer.
func (e *APIError) Error() string { return e.ErrorBody.Error }

// ErrNoDaemon says that nothing answers at the API's address.
var ErrNoDaemon = errors.New("no syncnode daemon answers")

// Do sends a request with a JSON body (nil for none, or raw bytes as
// json.RawMessage) and decodes a JSON answer into out (if not nil).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("reading the answer to %s %s: %w", method, path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case json.RawMessage:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && ctx.Err() == nil {
			var oe *net.OpError
			if errors.As(err, &oe) && oe.Op == "dial" {
				return nil, fmt.Errorf("%w at %s (is `syncnode run` running?): %v", ErrNoDaemon, strings.TrimPrefix(c.base, "http://"), oe.Err)
			}
		}
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		ae := &APIError{Status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &ae.ErrorBody) != nil || ae.ErrorBody.Error == "" {
			ae.ErrorBody = ErrorBody{Error: fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(b))), Code: "http"}
		}
		return nil, ae
	}
	return resp, nil
}

// Events reads the server-sent events of a library, calling fn for each,
// until ctx ends, the stream ends or fn returns an error.
func (c *Client) Events(ctx context.Context, lib string, fn func(Event) error) error {
	return c.EventsSince(ctx, lib, "", fn)
}

// EventsSince is Events resuming after the event ID since ("" for only new
// events): the daemon first sends the events after it that its event log
// holds (and a "resync" event if some were lost).
func (c *Client) EventsSince(ctx context.Context, lib, since string, fn func(Event) error) error {
	path := "/v1/libraries/" + url.PathEscape(lib) + "/events"
	if since != "" {
		path += "?since=" + url.QueryEscape(since)
	}
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var ev Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("reading an event: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading events: %w", err)
	}
	return errors.New("the daemon closed the event stream")
}
