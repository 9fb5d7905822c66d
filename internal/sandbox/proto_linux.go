package sandbox

import (
	"encoding/json"
	"fmt"
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

func send(fd int, m message, files ...int) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(files) > 0 {
		oob = unix.UnixRights(files...)
	}
	return unix.Sendmsg(fd, b, oob, nil, 0)
}

// recv reads one message and the descriptors sent with it (close-on-exec). io.EOF-like end of
// the peer is reported as errClosed.
func recv(fd int) (message, []int, error) {
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return message{}, nil, err
		}
		var fds []int
		if oobn > 0 {
			cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil {
				return message{}, nil, err
			}
			for _, c := range cmsgs {
				got, err := unix.ParseUnixRights(&c)
				if err == nil {
					fds = append(fds, got...)
				}
			}
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
