package protocol

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
)

// TestCodesAreStable pins every code's number, name and sentinel: changing
// one breaks the wire.
func TestCodesAreStable(t *testing.T) {
	for _, tc := range []struct {
		code Code
		num  uint16
		name string
		err  error
		text string
	}{
		{CodeMalformed, 1, "malformed", ErrMalformed, "protocol: malformed message"},
		{CodeUnknownMessage, 2, "unknown_message", ErrUnknownMessage, "protocol: unknown message"},
		{CodeFrameTooLarge, 3, "frame_too_large", ErrFrameTooLarge, "protocol: frame too large"},
		{CodeInvalid, 4, "invalid", ErrInvalid, "protocol: invalid message"},
		{CodeUnsupportedVersion, 5, "unsupported_version", ErrUnsupportedVersion, "protocol: unsupported version"},
		{CodeNotMember, 6, "not_member", ErrNotMember, "protocol: not a member"},
		{CodeUnknownLibrary, 7, "unknown_library", ErrUnknownLibrary, "protocol: unknown library"},
		{CodeUnknownModelType, 8, "unknown_model_type", ErrUnknownModelType, "protocol: unknown model type"},
		{CodeOwnership, 9, "ownership", ErrOwnership, "protocol: ownership violation"},
		{CodeClockSkew, 10, "clock_skew", ErrClockSkew, "protocol: clock skew"},
		{CodeRateLimited, 11, "rate_limited", ErrRateLimited, "protocol: rate limited"},
		{CodeUnexpected, 12, "unexpected", ErrUnexpected, "protocol: unexpected message"},
		{CodeShuttingDown, 13, "shutting_down", ErrShuttingDown, "protocol: shutting down"},
		{CodeInternal, 14, "internal", ErrInternal, "protocol: internal error"},
		{CodeTimeout, 15, "timeout", ErrTimeout, "protocol: timeout"},
	} {
		if uint16(tc.code) != tc.num {
			t.Errorf("%s = %d, want %d", tc.name, tc.code, tc.num)
		}
		if got := tc.code.String(); got != tc.name {
			t.Errorf("Code(%d).String() = %q, want %q", tc.num, got, tc.name)
		}
		if got := ErrorOf(tc.code); got != tc.err {
			t.Errorf("ErrorOf(%d) = %v, want %v", tc.num, got, tc.err)
		}
		if got := CodeOf(tc.err); got != tc.code {
			t.Errorf("CodeOf(%v) = %d, want %d", tc.err, got, tc.num)
		}
		if got := CodeOf(fmt.Errorf("handling: %w", tc.err)); got != tc.code {
			t.Errorf("CodeOf(wrapped %v) = %d, want %d", tc.err, got, tc.num)
		}
		if tc.err.Error() != tc.text {
			t.Errorf("sentinel text %q, want %q", tc.err, tc.text)
		}
	}
	if len(codeTable) != 15 {
		t.Errorf("codeTable has %d codes, want 15: a new code needs a line in this test", len(codeTable))
	}
}

func TestCodeOf(t *testing.T) {
	skew := &hlc.SkewError{Remote: hlcB(1, 0), Ahead: time.Hour, MaxDrift: 5 * time.Minute}
	for _, tc := range []struct {
		name string
		err  error
		want Code
	}{
		{"nil", nil, 0},
		{"unknown error", errors.New("disk on fire"), CodeInternal},
		{"hlc.ErrClockSkew", hlc.ErrClockSkew, CodeClockSkew},
		{"hlc.SkewError", skew, CodeClockSkew},
		{"wrapped SkewError", fmt.Errorf("applying change: %w", skew), CodeClockSkew},
		{"context deadline", context.DeadlineExceeded, CodeTimeout},
		{"I/O deadline", fmt.Errorf("reading frame: %w", os.ErrDeadlineExceeded), CodeTimeout},
		{"unknown code from a peer", ErrUnknownCode, CodeInternal},
		{"specific wins over invalid", fmt.Errorf("%w: %w", ErrInvalid, ErrOwnership), CodeOwnership},
		{"specific wins over malformed", fmt.Errorf("%w: %w", ErrMalformed, ErrFrameTooLarge), CodeFrameTooLarge},
		{"specific wins over internal", fmt.Errorf("%w: %w", ErrInternal, ErrShuttingDown), CodeShuttingDown},
		{"lowest specific code wins", errors.Join(ErrOwnership, ErrNotMember), CodeNotMember},
		{"a decode error", func() error { _, err := Decode([]byte{0xff}); return err }(), CodeMalformed},
		{"a validate error", (&Hello{}).Validate(), CodeInvalid},
	} {
		if got := CodeOf(tc.err); got != tc.want {
			t.Errorf("%s: CodeOf(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestUnknownCode(t *testing.T) {
	for _, c := range []Code{0, 16, 999, 65535} {
		if got := ErrorOf(c); got != ErrUnknownCode {
			t.Errorf("ErrorOf(%d) = %v, want ErrUnknownCode", c, got)
		}
		if got, want := c.String(), fmt.Sprintf("code(%d)", c); got != want {
			t.Errorf("Code(%d).String() = %q, want %q", c, got, want)
		}
	}
}

func TestNewError(t *testing.T) {
	m := NewError(exLibrary, fmt.Errorf("storing page: %w", ErrOwnership))
	if m.LibraryID != exLibrary || m.Code != CodeOwnership || m.Message != "storing page: protocol: ownership violation" {
		t.Fatalf("NewError: got %+v, want library, code ownership and the error's text", m)
	}
	if err := m.Err(); !errors.Is(err, ErrOwnership) || !strings.Contains(err.Error(), "storing page") {
		t.Fatalf("Err(): got %v, want an error matching ErrOwnership with the peer's text", err)
	}

	// A long text with a multi-byte character across the cut.
	long := strings.Repeat("a", MaxErrorMessageLen-1) + "é and more"
	m = NewError(uuid.Nil, errors.New(long))
	if len(m.Message) != MaxErrorMessageLen-1 || !utf8.ValidString(m.Message) {
		t.Fatalf("NewError of a long text: got %d bytes (valid UTF-8: %v), want %d bytes of valid UTF-8", len(m.Message), utf8.ValidString(m.Message), MaxErrorMessageLen-1)
	}
	if m.Code != CodeInternal {
		t.Fatalf("NewError of a plain error: code %v, want internal", m.Code)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("NewError message does not validate: %v", err)
	}

	m = NewError(exLibrary, errors.New("bad \xff byte"))
	if m.Message != "bad \uFFFD byte" {
		t.Fatalf("NewError of invalid UTF-8: got %q, want the byte replaced", m.Message)
	}
	if _, err := Encode(m); err != nil {
		t.Fatalf("Encode(NewError(...)): %v", err)
	}

	if m := NewError(exLibrary, nil); m.Code != 0 || m.Message != "" {
		t.Fatalf("NewError(nil): got %+v, want code 0 and no text", m)
	}
}
