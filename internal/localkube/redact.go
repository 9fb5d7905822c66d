package localkube

import (
	"io"
)

// Secret values never reach what people see: the pod logs, the stderr line quoted in events
// and errors, exec handlers' output, Up's errors. c.redact holds the manifests' Secret values
// and, as pods are created, each such value as a pod got it (with a Service name rewritten).

// redactOutput wraps a container's output sinks (nil: discarded) when there is a secret to
// hide, and sets *flush to what writes out their last unterminated lines once the process's
// output has ended (a no-op when nothing is wrapped).
func (c *Cluster) redactOutput(stdout, stderr io.Writer, flush *func()) (io.Writer, io.Writer) {
	*flush = func() {}
	if c.redact.Empty() {
		return stdout, stderr
	}
	var closers []io.Closer
	wrap := func(w io.Writer) io.Writer {
		if w == nil {
			return nil
		}
		rw := c.redact.Writer(w)
		closers = append(closers, rw)
		return rw
	}
	stdout, stderr = wrap(stdout), wrap(stderr)
	*flush = func() {
		for _, cl := range closers {
			_ = cl.Close()
		}
	}
	return stdout, stderr
}
