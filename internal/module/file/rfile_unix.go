//go:build unix

package file

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// rfile is a file open for reading, through plain system calls: the walk
// opens every file once and needs none of os.File's machinery.
type rfile struct {
	fd int
}

// open opens the file at path.
func (f *rfile) open(path string) error {
	for {
		fd, err := syscall.Open(path, openFlags, 0)
		if errors.Is(err, syscall.EPERM) && openFlags != openFlagsFallback {
			fd, err = syscall.Open(path, openFlagsFallback, 0)
		}
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "open", Path: path, Err: err}
		}
		// The walk saw a regular file, but another may have taken its
		// place since: a FIFO fed by a writer or a device would be read
		// for as long as it gives data.
		var st syscall.Stat_t
		for {
			err = syscall.Fstat(fd, &st)
			if !errors.Is(err, syscall.EINTR) {
				break
			}
		}
		if err == nil && st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			err = errNotRegular
		}
		if err != nil {
			syscall.Close(fd)
			return &os.PathError{Op: "open", Path: path, Err: err}
		}
		f.fd = fd
		return nil
	}
}

// Read implements io.Reader.
func (f *rfile) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := syscall.Read(f.fd, p)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// rewind goes back to the start of the file.
func (f *rfile) rewind() error {
	_, err := syscall.Seek(f.fd, 0, io.SeekStart)
	return err
}

// Close closes the file.
func (f *rfile) Close() error {
	return syscall.Close(f.fd)
}
