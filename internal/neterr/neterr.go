// Package neterr classifies what went wrong in an HTTP exchange's transport (dial, write, read)
// into the few classes gracelab reports. The load generator and the downstream both use it, so
// an error has the same name whichever hop it happened on.
package neterr

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// Class is the name of a transport failure.
type Class string

const (
	Refused Class = "refused" // connection refused: nothing listens, the request never left
	Reset   Class = "reset"   // connection reset by the peer, or broken pipe
	EOF     Class = "eof"     // connection closed before the whole answer arrived
	Timeout Class = "timeout" // a deadline ran out
	Other   Class = "other"   // anything else (DNS failure, TLS error, cancelled caller)
)

// Classify maps a transport error to its class.
func Classify(err error) Class {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Timeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return Reset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		// net/http's unexported errServerClosedIdle: the server closed a pooled connection
		// as the request was being sent on it.
		strings.Contains(err.Error(), "server closed idle connection"):
		return EOF
	}
	return Other
}
