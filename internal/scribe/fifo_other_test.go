//go:build !unix

package scribe

import "errors"

func mkfifo(string) error { return errors.New("not supported") }
