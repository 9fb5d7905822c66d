package sandbox

import (
	"encoding/json"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// The shim and gracelab talk over one SOCK_SEQPACKET socket pair: every message is one JSON
// object in one packet, with file descriptors (connections, stdio) as SCM_RIGHTS beside it.
// Requests carry an ID that the reply repeats; the shim also sends events (a process exited,
// a connection was accepted) with no request behind them.

const maxMessage = 1 << 16

type message struct {
	Op string `json:"op"`
	ID uint64 `json:"id,omitempty"`

	Err string `json:"err,omitempty"`

	// start
	Path string   `json:"path,omitempty"`
	Args []string `json:"args,omitempty"`
	Env  []string `json:"env,omitempty"`
	Dir  string   `json:"dir,omitempty"`
	Pid  int      `json:"pid,omitempty"`
	// exit
	Status int `json:"status,omitempty"`
	// signal
	Signal int `json:"signal,omitempty"`
	// dial, listen, accept
	Addr string `json:"addr,omitempty"`
}

const (
	opReady  = "ready"
	opFatal  = "fatal"
	opStart  = "start"
	opSignal = "signal"
	opDial   = "dial"
	opExit   = "exit"
	opAccept = "accept"
	opReply  = "reply"
)

// The socket goes through Go's network poller (a *net.UnixConn), not raw blocking calls: a
// goroutine blocked in a raw recvmsg holds its thread's P until the runtime notices, which
// delayed every reply by milliseconds.

func send(c *net.UnixConn, m message, files ...int) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(files) > 0 {
		oob = unix.UnixRights(files...)
	}
	_, _, err = c.WriteMsgUnix(b, oob, nil)
	return err
}

// recv reads one message and the descriptors sent with it (close-on-exec). The peer's end is
// errClosed.
func recv(c *net.UnixConn, buf, oob []byte) (message, []int, error) {
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	var fds []int
	if oobn > 0 {
		cmsgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr == nil {
			for _, cm := range cmsgs {
				if got, err := unix.ParseUnixRights(&cm); err == nil {
					fds = append(fds, got...)
				}
			}
		}
	}
	if err != nil {
		closeAll(fds)
		return message{}, nil, err
	}
	if n == 0 && oobn == 0 {
		return message{}, nil, errClosed
	}
	var m message
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		closeAll(fds)
		return message{}, nil, fmt.Errorf("bad message from the sandbox peer: %w", err)
	}
	return m, fds, nil
}

// unixConn makes a connected socket's descriptor a *net.UnixConn (the descriptor is taken).
func unixConn(fd int, name string) (*net.UnixConn, error) {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("%s is not a Unix socket", name)
	}
	return uc, nil
}

func newBuffers() ([]byte, []byte) {
	return make([]byte, maxMessage), make([]byte, unix.CmsgSpace(4*4))
}

var errClosed = fmt.Errorf("sandbox connection closed")

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// fileFD returns a duplicate of f's descriptor that the caller owns, or -1 for nil.
func fileFD(f *os.File) (int, error) {
	if f == nil {
		return -1, nil
	}
	return unix.Dup(int(f.Fd()))
}
