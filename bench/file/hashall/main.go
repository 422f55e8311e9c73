// Command hashall reads and hashes every regular file under a directory
// with the Go standard library alone, on -p goroutines: the physical limit
// the file module's hash search is measured against. It prints
// "<hex>  <path>" per file, as sha256sum does.
//
//	hashall -algo sha256 -p 2 /tmp/migbench/tree
package main

import (
	"bufio"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

func main() {
	algo := flag.String("algo", "sha256", "hash: md5 or sha256")
	procs := flag.Int("p", 2, "goroutines reading and hashing")
	flag.Parse()
	if flag.NArg() != 1 || (*algo != "md5" && *algo != "sha256") || *procs < 1 {
		fmt.Fprintln(os.Stderr, "usage: hashall [-algo md5|sha256] [-p N] DIR")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *algo, *procs); err != nil {
		fmt.Fprintln(os.Stderr, "hashall:", err)
		os.Exit(1)
	}
}

func run(root, algo string, procs int) error {
	paths := make(chan string, 1024)
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < procs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := newHash(algo)
			buf := make([]byte, 256<<10)
			var sum []byte
			for p := range paths {
				f, err := os.Open(p)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					continue
				}
				h.Reset()
				_, err = io.CopyBuffer(h, struct{ io.Reader }{f}, buf)
				f.Close()
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					continue
				}
				sum = h.Sum(sum[:0])
				mu.Lock()
				fmt.Fprintf(out, "%s  %s\n", hex.EncodeToString(sum), p)
				mu.Unlock()
			}
		}()
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return nil
		}
		if d.Type().IsRegular() {
			paths <- p
		}
		return nil
	})
	close(paths)
	wg.Wait()
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return err
}

func newHash(algo string) hash.Hash {
	if algo == "md5" {
		return md5.New()
	}
	return sha256.New()
}
