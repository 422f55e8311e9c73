//go:build !unix

package file

import (
	"io"
	"os"
)

// rfile is a file open for reading.
type rfile struct {
	f *os.File
}

// open opens the file at path.
func (f *rfile) open(path string) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	info, err := file.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = &os.PathError{Op: "open", Path: path, Err: errNotRegular}
	}
	if err != nil {
		file.Close()
		return err
	}
	f.f = file
	return nil
}

// Read implements io.Reader.
func (f *rfile) Read(p []byte) (int, error) {
	return f.f.Read(p)
}

// rewind goes back to the start of the file.
func (f *rfile) rewind() error {
	_, err := f.f.Seek(0, io.SeekStart)
	return err
}

// Close closes the file.
func (f *rfile) Close() error {
	return f.f.Close()
}
