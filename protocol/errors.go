package protocol

// Code is a wire error code carried by Error. Codes are stable: a value is
// never reused for another meaning.
type Code uint16
