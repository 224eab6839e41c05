package main

import (
	"encoding/xml"
	"os"
	"strings"
	"testing"
)

// The service definitions run the daemon, reload it with SIGHUP (systemd)
// and are well-formed (the plist is XML).
func TestServiceFiles(t *testing.T) {
	unit, err := os.ReadFile("../../dist/systemd/syncnode.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nExecStart=%h/go/bin/syncnode run\n", "\nExecReload=/bin/kill -HUP $MAINPID\n", "\n[Install]\nWantedBy=default.target\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the systemd unit lacks %q", want)
		}
	}
	plist, err := os.ReadFile("../../dist/launchd/org.syncnode.syncnode.plist")
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(strings.NewReader(string(plist)))
	var strs []string
	inString := false
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("the plist is not well-formed XML: %v", err)
			}
			break
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			inString = tk.Name.Local == "string"
		case xml.EndElement:
			inString = false
		case xml.CharData:
			if inString {
				strs = append(strs, string(tk))
			}
		}
	}
	joined := strings.Join(strs, " ")
	if !strings.Contains(joined, "org.syncnode.syncnode") || !strings.Contains(joined, "/go/bin/syncnode run") {
		t.Errorf("the plist does not run `syncnode run` as org.syncnode.syncnode: %q", joined)
	}
}
