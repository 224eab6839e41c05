package localapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/syncnode/syncnode/node"
)

// TestAPIDoc runs every curl example of docs/API.md against a real node and
// checks the status and the fields of the answer that the doc shows.
func TestAPIDoc(t *testing.T) {
	env := startServer(t)
	vars := map[string]string{"API": env.addr, "TOKEN": env.token}
	examples := parseDoc(t, "../../docs/API.md")
	if len(examples) < 15 {
		t.Fatalf("found %d examples in docs/API.md, expected every endpoint's", len(examples))
	}
	for _, ex := range examples {
		req, err := ex.request(vars)
		if err != nil {
			t.Fatalf("docs/API.md line %d: %v", ex.line, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("docs/API.md line %d: %v", ex.line, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != ex.status {
			t.Fatalf("docs/API.md line %d: %s %s answered %d, the doc says %d: %s", ex.line, req.Method, req.URL.Path, resp.StatusCode, ex.status, body)
		}
		var got any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("docs/API.md line %d: the answer is not JSON: %v: %s", ex.line, err, body)
		}
		if ex.want != "" {
			var want any
			if err := json.Unmarshal([]byte(ex.want), &want); err != nil {
				t.Fatalf("docs/API.md line %d: the documented answer is not JSON: %v", ex.line, err)
			}
			if err := sameShape(want, got); err != nil {
				t.Fatalf("docs/API.md line %d: %s %s: %v\nanswer: %s", ex.line, req.Method, req.URL.Path, err, body)
			}
			if err := sameVersions(want, got); err != nil {
				t.Fatalf("docs/API.md line %d: %s %s: %v\nanswer: %s", ex.line, req.Method, req.URL.Path, err, body)
			}
		}
		for name, field := range ex.sets {
			obj, _ := got.(map[string]any)
			v, ok := obj[field].(string)
			if !ok {
				t.Fatalf("docs/API.md line %d: the answer has no string field %q to set %s from: %s", ex.line, field, name, body)
			}
			vars[name] = v
		}
	}
}

// sameShape checks that got has every field want has (objects), or is of
// the same kind (arrays: the first element's fields, if got has one).
func sameShape(want, got any) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("the answer is not an object")
		}
		for k := range w {
			if _, ok := g[k]; !ok {
				return fmt.Errorf("the answer lacks field %q that the doc shows", k)
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Errorf("the answer is not an array")
		}
		if len(w) > 0 && len(g) > 0 {
			return sameShape(w[0], g[0])
		}
	}
	return nil
}

// Versions are HLCs as text. docVersion is the form the doc shows (its
// device cut short with "…", or just "…"); apiVersion the one the API
// answers, which hlc.Parse reads.
var (
	docVersion = regexp.MustCompile(`^(…|[0-9]+:[0-9]+:[0-9a-f-]*…)$`)
	apiVersion = regexp.MustCompile(`^[0-9]+:[0-9]+:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// sameVersions checks every "version" field that the doc shows, at any
// depth: the doc's value has the documented form, and the answer's value
// at the same place is an HLC in the form the daemon writes.
func sameVersions(want, got any) error {
	switch w := want.(type) {
	case map[string]any:
		g, _ := got.(map[string]any)
		for k, wv := range w {
			if k == "version" {
				ws, _ := wv.(string)
				gs, _ := g[k].(string)
				if !docVersion.MatchString(ws) {
					return fmt.Errorf("the doc shows version %q, not in the form timestamp:counter:device", ws)
				}
				if !apiVersion.MatchString(gs) {
					return fmt.Errorf("the answer's version %q is not timestamp:counter:device", gs)
				}
				continue
			}
			if err := sameVersions(wv, g[k]); err != nil {
				return err
			}
		}
	case []any:
		g, _ := got.([]any)
		for i := range min(len(w), len(g)) {
			if err := sameVersions(w[i], g[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

type example struct {
	line   int
	words  []string
	status int
	sets   map[string]string
	want   string
}

var directive = regexp.MustCompile(`^# expect (\d+)(?:; sets (\w+) from \.(\w+))?$`)

// parseDoc finds every ```sh block holding a curl line and the ```json
// block after it.
func parseDoc(t *testing.T, path string) []*example {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*example
	var cur *example
	block, n := "", 0
	var text []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case block == "" && strings.HasPrefix(line, "```"):
			block, text = strings.TrimPrefix(line, "```"), nil
			if block == "" {
				block = "plain"
			}
		case block != "" && line == "```":
			switch block {
			case "sh":
				ex := &example{status: 200, sets: map[string]string{}}
				for _, l := range text {
					if m := directive.FindStringSubmatch(l); m != nil {
						ex.status, _ = strconv.Atoi(m[1])
						if m[2] != "" {
							ex.sets[m[2]] = m[3]
						}
					} else if strings.HasPrefix(l, "curl ") {
						ex.line = n - len(text)
						ex.words = shellWords(l)
					}
				}
				if ex.words != nil {
					out = append(out, ex)
					cur = ex
				}
			case "json":
				if cur != nil && cur.want == "" {
					cur.want = strings.Join(text, "\n")
				}
				cur = nil
			}
			block = ""
		case block != "":
			text = append(text, line)
		}
	}
	return out
}

// shellWords splits a command line as sh would, keeping $VARS for later
// (also those that sh would expand between quotes: '{"a": "'"$A"'"}').
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

var varRef = regexp.MustCompile(`\$([A-Z_]+)`)

func (ex *example) request(vars map[string]string) (*http.Request, error) {
	expand := func(s string) (string, error) {
		var missing string
		r := varRef.ReplaceAllStringFunc(s, func(m string) string {
			v, ok := vars[m[1:]]
			if !ok {
				missing = m
			}
			return v
		})
		if missing != "" {
			return "", fmt.Errorf("%s is not set by an earlier example", missing)
		}
		return r, nil
	}
	method, url, data := "", "", ""
	var headers [][2]string
	w := ex.words[1:]
	for i := 0; i < len(w); i++ {
		switch a := w[i]; {
		case a == "-s" || a == "-sN":
		case a == "-X" && i+1 < len(w):
			i++
			method = w[i]
		case a == "-H" && i+1 < len(w):
			i++
			k, v, ok := strings.Cut(w[i], ": ")
			if !ok {
				return nil, fmt.Errorf("header %q", w[i])
			}
			headers = append(headers, [2]string{k, v})
		case a == "-d" && i+1 < len(w):
			i++
			data = w[i]
		case strings.HasPrefix(a, "http://"):
			url = a
		default:
			return nil, fmt.Errorf("curl argument %q is not understood by the doc test", a)
		}
	}
	if method == "" {
		method = "GET"
		if data != "" {
			method = "POST"
		}
	}
	url, err := expand(url)
	if err != nil {
		return nil, err
	}
	if data, err = expand(data); err != nil {
		return nil, err
	}
	var body io.Reader
	if data != "" {
		body = strings.NewReader(data)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, err
	}
	for _, h := range headers {
		v, err := expand(h[1])
		if err != nil {
			return nil, err
		}
		req.Header.Set(h[0], v)
	}
	return req, nil
}

// The record limit the documents state is node.MaxRecordSize, the one the
// API enforces (and the CLI states, from the same constant).
func TestDocsStateTheRecordLimit(t *testing.T) {
	limit := fmt.Sprintf("%d MiB", node.MaxRecordSize>>20)
	if node.MaxRecordSize%(1<<20) != 0 {
		t.Fatalf("MaxRecordSize %d is no whole number of MiB: update the documents' wording", node.MaxRecordSize)
	}
	for _, doc := range []string{"../../docs/API.md", "../../README.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "at most "+limit) && !strings.Contains(string(b), "more than **"+limit+"**") {
			t.Errorf("%s does not state the record limit, %s", doc, limit)
		}
	}
}
