package protocol

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
)

// Code is a wire error code carried by Error. Codes are stable: a value is
// never reused for another meaning. A peer may send a code this package does
// not know; it decodes like any other and ErrorOf maps it to ErrUnknownCode.
type Code uint16

// The wire error codes. docs/PROTOCOL.md says when each is sent and whether
// the stream is reset after it.
const (
	// CodeMalformed: the frame is not a well-formed message (not CBOR,
	// trailing bytes, duplicate keys, too deep, too many elements, a field of
	// the wrong type).
	CodeMalformed Code = 1
	// CodeUnknownMessage: the variant name is not one the receiver knows.
	CodeUnknownMessage Code = 2
	// CodeFrameTooLarge: the frame's length exceeds the receiver's limit.
	CodeFrameTooLarge Code = 3
	// CodeInvalid: the message decoded but breaks a rule of Validate.
	CodeInvalid Code = 4
	// CodeUnsupportedVersion: Hello lists no version the receiver speaks.
	CodeUnsupportedVersion Code = 5
	// CodeNotMember: the sender is not a member of the library.
	CodeNotMember Code = 6
	// CodeUnknownLibrary: the receiver does not serve the library.
	CodeUnknownLibrary Code = 7
	// CodeUnknownModelType: the model type is not registered, or has the
	// other strategy than the message implies.
	CodeUnknownModelType Code = 8
	// CodeOwnership: a claim in the message (from_device, device_id, the
	// origin of a pushed change) contradicts the authenticated sender.
	CodeOwnership Code = 9
	// CodeClockSkew: a change is stamped too far ahead of the receiver's
	// wall clock; it was quarantined.
	CodeClockSkew Code = 10
	// CodeRateLimited: the sender sends faster than the receiver accepts.
	CodeRateLimited Code = 11
	// CodeUnexpected: the message is not valid at this point of an exchange
	// (for example a second Hello, or a response nobody asked for).
	CodeUnexpected Code = 12
	// CodeShuttingDown: the receiver is closing.
	CodeShuttingDown Code = 13
	// CodeInternal: the receiver failed for a reason of its own.
	CodeInternal Code = 14
	// CodeTimeout: the peer took too long.
	CodeTimeout Code = 15
)

// Sentinel errors, one per Code. Match them with errors.Is.
var (
	ErrMalformed          = errors.New("protocol: malformed message")
	ErrUnknownMessage     = errors.New("protocol: unknown message")
	ErrFrameTooLarge      = errors.New("protocol: frame too large")
	ErrInvalid            = errors.New("protocol: invalid message")
	ErrUnsupportedVersion = errors.New("protocol: unsupported version")
	ErrNotMember          = errors.New("protocol: not a member")
	ErrUnknownLibrary     = errors.New("protocol: unknown library")
	ErrUnknownModelType   = errors.New("protocol: unknown model type")
	ErrOwnership          = errors.New("protocol: ownership violation")
	ErrClockSkew          = errors.New("protocol: clock skew")
	ErrRateLimited        = errors.New("protocol: rate limited")
	ErrUnexpected         = errors.New("protocol: unexpected message")
	ErrShuttingDown       = errors.New("protocol: shutting down")
	ErrInternal           = errors.New("protocol: internal error")
	ErrTimeout            = errors.New("protocol: timeout")

	// ErrUnknownCode is what ErrorOf returns for a code this package does not
	// know (a newer peer's); CodeOf maps it back to CodeInternal.
	ErrUnknownCode = errors.New("protocol: unknown error code")
)

// codeTable is the one place that maps codes, names and sentinels. CodeOf,
// ErrorOf and Code.String read it; nothing else does.
var codeTable = [...]struct {
	code Code
	name string
	err  error
	// also are other errors that map to code (checked with errors.Is).
	also []error
	// generic codes lose to specific ones in CodeOf: an error that wraps
	// both ErrInvalid and ErrOwnership is an ownership error.
	generic bool
}{
	{CodeMalformed, "malformed", ErrMalformed, nil, true},
	{CodeUnknownMessage, "unknown_message", ErrUnknownMessage, nil, false},
	{CodeFrameTooLarge, "frame_too_large", ErrFrameTooLarge, nil, false},
	{CodeInvalid, "invalid", ErrInvalid, nil, true},
	{CodeUnsupportedVersion, "unsupported_version", ErrUnsupportedVersion, nil, false},
	{CodeNotMember, "not_member", ErrNotMember, nil, false},
	{CodeUnknownLibrary, "unknown_library", ErrUnknownLibrary, nil, false},
	{CodeUnknownModelType, "unknown_model_type", ErrUnknownModelType, nil, false},
	{CodeOwnership, "ownership", ErrOwnership, nil, false},
	{CodeClockSkew, "clock_skew", ErrClockSkew, []error{hlc.ErrClockSkew}, false},
	{CodeRateLimited, "rate_limited", ErrRateLimited, nil, false},
	{CodeUnexpected, "unexpected", ErrUnexpected, nil, false},
	{CodeShuttingDown, "shutting_down", ErrShuttingDown, nil, false},
	{CodeInternal, "internal", ErrInternal, nil, true},
	{CodeTimeout, "timeout", ErrTimeout, []error{context.DeadlineExceeded, os.ErrDeadlineExceeded}, false},
}

// String returns the code's wire name, for example "frame_too_large", or
// "code(N)" for a code this package does not know.
func (c Code) String() string {
	for _, e := range codeTable {
		if e.code == c {
			return e.name
		}
	}
	return "code(" + strconv.FormatUint(uint64(c), 10) + ")"
}

// CodeOf returns the wire code for err: the code of the sentinel that err
// matches with errors.Is, CodeClockSkew for any error matching
// hlc.ErrClockSkew, CodeTimeout for context.DeadlineExceeded and
// os.ErrDeadlineExceeded, 0 for nil, and CodeInternal for anything else. When
// err matches several sentinels, a specific one (ownership, clock_skew, ...)
// wins over the generic malformed, invalid and internal, and otherwise the
// lowest code wins.
func CodeOf(err error) Code {
	if err == nil {
		return 0
	}
	for _, generic := range []bool{false, true} {
		for _, e := range codeTable {
			if e.generic != generic {
				continue
			}
			if errors.Is(err, e.err) {
				return e.code
			}
			for _, a := range e.also {
				if errors.Is(err, a) {
					return e.code
				}
			}
		}
	}
	return CodeInternal
}

// ErrorOf returns the sentinel error for code, or ErrUnknownCode for a code
// this package does not know.
func ErrorOf(code Code) error {
	for _, e := range codeTable {
		if e.code == code {
			return e.err
		}
	}
	return ErrUnknownCode
}

// NewError builds the Error message that reports err for library lib (nil
// when no library is known): its code is CodeOf(err) and its message err's
// text, made valid UTF-8 and cut to MaxErrorMessageLen bytes.
func NewError(lib uuid.UUID, err error) *Error {
	msg := ""
	if err != nil {
		msg = truncateUTF8(strings.ToValidUTF8(err.Error(), "\uFFFD"), MaxErrorMessageLen)
	}
	return &Error{LibraryID: lib, Code: CodeOf(err), Message: msg}
}

// Err returns the error a received Error message stands for: it matches
// ErrorOf(m.Code) with errors.Is and carries the peer's text.
func (m *Error) Err() error {
	return fmt.Errorf("%w (peer says %q)", ErrorOf(m.Code), m.Message)
}

// truncateUTF8 cuts the valid UTF-8 string s to at most n bytes without
// splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
