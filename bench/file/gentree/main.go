// Command gentree writes a reproducible test tree for the file module's
// benchmark: by default about 200,000 files in about 12,000 directories,
// 2 GiB in all, of mixed sizes (most small, a few of several MiB, eight of
// 16 MiB), 85 % text and 15 % random binary, with planted markers and
// known hashes. The same flags and seed always give the same tree.
//
// Planted, for the benchmark's questions:
//
//   - names: about 1,500 files secret-NNNNNN.key; about 60,000 files *.log
//   - contents: about 500 text files with a line "aws_access_key_id =
//     AKIA<16 of [0-9A-Z]>"; about 300 with "password = hunter2" in mixed
//     case and spacing; one file whose single 1 MiB line ends in an AWS key
//   - hashes: every 4001st file's MD5 and SHA-256 are in the manifest, and
//     three copies of file 0 (ioc-copy-N.bin) share its hashes
//   - 20 gzip files *.log.gz whose uncompressed text holds an AWS key
//
// It writes a manifest (JSON) next to the tree, never inside it:
//
//	gentree -root /tmp/migbench/tree -manifest /tmp/migbench/manifest.json
package main

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
)

func main() {
	cfg := config{}
	flag.StringVar(&cfg.root, "root", "/tmp/migbench/tree", "directory to create (must not exist)")
	flag.StringVar(&cfg.manifest, "manifest", "/tmp/migbench/manifest.json", "manifest file to write")
	flag.IntVar(&cfg.files, "files", 200000, "number of files")
	flag.IntVar(&cfg.dirs, "dirs", 12000, "number of directories (about)")
	flag.Int64Var(&cfg.bytes, "bytes", 2<<30, "total size in bytes (about)")
	flag.Uint64Var(&cfg.seed, "seed", 1, "seed of the pseudo-random generator")
	flag.IntVar(&cfg.workers, "workers", runtime.NumCPU(), "files written in parallel")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "gentree:", err)
		os.Exit(1)
	}
}

type config struct {
	root, manifest string
	files, dirs    int
	bytes          int64
	seed           uint64
	workers        int
}

// Manifest describes what the tree holds.
type Manifest struct {
	Root        string   `json:"root"`
	Seed        uint64   `json:"seed"`
	Files       int      `json:"files"`
	Dirs        int      `json:"dirs"`
	Bytes       int64    `json:"bytes"`
	SecretKeys  int      `json:"secretkeys"`
	LogFiles    int      `json:"logfiles"`
	AWSKeys     []string `json:"awskeys"`
	Passwords   []string `json:"passwords"`
	LongLine    string   `json:"longline"`
	GzipMarkers []string `json:"gzipmarkers"`
	Hashes      []Hash   `json:"hashes"`
}

// Hash is a file with its known hashes.
type Hash struct {
	File   string `json:"file"`
	MD5    string `json:"md5"`
	SHA256 string `json:"sha256"`
}

// plan is what one file is.
type plan struct {
	path   string
	size   int64
	binary bool
	aws    bool
	pw     bool
	hashed bool
}

func run(cfg config) error {
	if cfg.files < 100 || cfg.dirs < 10 || cfg.bytes < int64(cfg.files)*64 {
		return fmt.Errorf("-files %d, -dirs %d, -bytes %d: too small", cfg.files, cfg.dirs, cfg.bytes)
	}
	if _, err := os.Stat(cfg.root); err == nil {
		return fmt.Errorf("%s exists already", cfg.root)
	}
	dirs := makeDirs(cfg.root, cfg.dirs)
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	plans, huge := planFiles(cfg, dirs)
	m := &Manifest{Root: cfg.root, Seed: cfg.seed, Files: len(plans), Dirs: len(dirs) + 1}
	pool := linePool(cfg.seed)

	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, cfg.workers)
	for w := 0; w < cfg.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			for i := w; i < len(plans); i += cfg.workers {
				p := plans[i]
				rng := rand.New(rand.NewPCG(cfg.seed, uint64(i)+1))
				buf.Reset()
				aws, pw := content(&buf, p, rng, pool)
				if err := os.WriteFile(p.path, buf.Bytes(), 0o644); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				m.Bytes += int64(buf.Len())
				if aws != "" {
					m.AWSKeys = append(m.AWSKeys, p.path)
				}
				if pw != "" {
					m.Passwords = append(m.Passwords, p.path)
				}
				if p.hashed {
					m.Hashes = append(m.Hashes, hashOf(p.path, buf.Bytes()))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if err := extras(cfg, m, dirs, plans, huge); err != nil {
		return err
	}
	sort.Strings(m.AWSKeys)
	sort.Strings(m.Passwords)
	sort.Slice(m.Hashes, func(i, j int) bool { return m.Hashes[i].File < m.Hashes[j].File })
	for _, p := range plans {
		switch filepath.Ext(p.path) {
		case ".key":
			m.SecretKeys++
		case ".log":
			m.LogFiles++
		}
	}
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.manifest), 0o755); err != nil {
		return err
	}
	return os.WriteFile(cfg.manifest, append(out, '\n'), 0o644)
}

// makeDirs returns about n directories in three levels under root.
func makeDirs(root string, n int) []string {
	// a first-level directories, b second-level ones in each, and a
	// third-level ones in each of those: a + a*b + a*b*a ~ n.
	a := int(math.Max(2, math.Round(math.Cbrt(float64(n)/1.0)*1.1)))
	b := max(1, int(math.Round(float64(n)/float64(a*a+a+1))))
	var dirs []string
	for i := 0; i < a; i++ {
		l1 := filepath.Join(root, fmt.Sprintf("d%02d", i))
		dirs = append(dirs, l1)
		for j := 0; j < b; j++ {
			l2 := filepath.Join(l1, fmt.Sprintf("d%02d", j))
			dirs = append(dirs, l2)
			for k := 0; k < a; k++ {
				dirs = append(dirs, filepath.Join(l2, fmt.Sprintf("d%02d", k)))
			}
		}
	}
	return dirs
}

// hugeCount and hugeSize are the few large files of the tree.
const (
	hugeCount = 8
	hugeSize  = 16 << 20
)

// planFiles decides every file's place, name, size and kind.
func planFiles(cfg config, dirs []string) ([]plan, []plan) {
	rng := rand.New(rand.NewPCG(cfg.seed, 0))
	plans := make([]plan, cfg.files)
	sizes := make([]float64, cfg.files)
	var total float64
	for i := range plans {
		r := rng.Float64()
		var lo, hi float64
		switch {
		case r < 0.70:
			lo, hi = 64, 4<<10
		case r < 0.96:
			lo, hi = 4<<10, 32<<10
		case r < 0.998:
			lo, hi = 32<<10, 256<<10
		default:
			lo, hi = 256<<10, 4<<20
		}
		sizes[i] = math.Exp(math.Log(lo) + rng.Float64()*(math.Log(hi)-math.Log(lo)))
		total += sizes[i]
	}
	budget := float64(cfg.bytes) - hugeCount*hugeSize
	scale := max(budget/total, 0.01)
	for i := range plans {
		p := &plans[i]
		dir := dirs[(i*7919)%len(dirs)]
		p.binary = rng.Float64() < 0.15
		ext := ".txt"
		switch {
		case i%133 == 7:
			p.path = filepath.Join(dir, fmt.Sprintf("secret-%06d.key", i))
		case i%10 < 3:
			ext = ".log"
		case p.binary:
			ext = [...]string{".bin", ".dat", ".so"}[i%3]
		default:
			ext = [...]string{".txt", ".conf", ".json", ".md", ".csv"}[i%5]
		}
		if p.path == "" {
			p.path = filepath.Join(dir, fmt.Sprintf("f%06d%s", i, ext))
		}
		p.size = max(int64(sizes[i]*scale), 16)
		p.aws = !p.binary && i%397 == 11
		p.pw = !p.binary && i%631 == 5
		p.hashed = i%4001 == 0
	}
	var huge []plan
	for i := 0; i < hugeCount; i++ {
		huge = append(huge, plan{
			path:   filepath.Join(dirs[(i*131)%len(dirs)], fmt.Sprintf("huge-%d.img", i)),
			size:   hugeSize,
			binary: i%2 == 0,
		})
	}
	return plans, huge
}

// words make the text files.
var words = []string{
	"the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on",
	"not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they",
	"you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more",
	"when", "will", "would", "who", "so", "no", "server", "request", "error", "warning", "info",
	"debug", "kernel", "user", "session", "connection", "timeout", "retry", "config", "value",
	"default", "enabled", "disabled", "path", "file", "port", "host", "address", "listen", "start",
	"stop", "service", "daemon", "process", "thread", "memory", "disk", "network", "packet", "bytes",
	"status", "ok", "failed", "success", "GET", "POST", "HTTP/1.1", "200", "404", "500", "=", ":",
	"{", "}", "[", "]", "true", "false", "null", "0", "1", "42", "1024", "127.0.0.1", "/var/log",
	"/etc/hosts", "localhost", "Mozilla/5.0", "Linux", "x86_64", "uid=1000", "gid=1000", "#",
}

// linePool returns text lines to build files from.
func linePool(seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, math.MaxUint64))
	pool := make([][]byte, 8192)
	for i := range pool {
		var b []byte
		n := 3 + rng.IntN(14)
		for j := 0; j < n; j++ {
			if j > 0 {
				b = append(b, ' ')
			}
			b = append(b, words[rng.IntN(len(words))]...)
		}
		pool[i] = append(b, '\n')
	}
	return pool
}

const keyChars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// content writes the file's content into buf and returns the markers it
// planted.
func content(buf *bytes.Buffer, p plan, rng *rand.Rand, pool [][]byte) (aws, pw string) {
	if p.binary {
		var seed [32]byte
		binary.LittleEndian.PutUint64(seed[:], rng.Uint64())
		binary.LittleEndian.PutUint64(seed[8:], rng.Uint64())
		cc := rand.NewChaCha8(seed)
		b := make([]byte, p.size)
		_, _ = cc.Read(b)
		buf.Write(b)
		return "", ""
	}
	var markers [][]byte
	if p.aws {
		k := make([]byte, 16)
		for i := range k {
			k[i] = keyChars[rng.IntN(len(keyChars))]
		}
		aws = "AKIA" + string(k)
		markers = append(markers, []byte("aws_access_key_id = "+aws+"\n"))
	}
	if p.pw {
		forms := []string{"password = hunter2", "PassWord=hunter2", "PASSWORD  =  HUNTER2", "Password =Hunter2"}
		pw = forms[rng.IntN(len(forms))]
		markers = append(markers, []byte("  "+pw+"\n"))
	}
	at := int64(-1)
	if len(markers) > 0 {
		at = rng.Int64N(p.size)
	}
	for int64(buf.Len()) < p.size {
		if at >= 0 && int64(buf.Len()) >= at {
			for _, m := range markers {
				buf.Write(m)
			}
			at = -1
			continue
		}
		buf.Write(pool[rng.IntN(len(pool))])
	}
	if at >= 0 {
		for _, m := range markers {
			buf.Write(m)
		}
	}
	if len(markers) == 0 && int64(buf.Len()) > p.size {
		buf.Truncate(int(p.size))
	}
	return aws, pw
}

func hashOf(path string, data []byte) Hash {
	m := md5.Sum(data)
	s := sha256.Sum256(data)
	return Hash{File: path, MD5: hex.EncodeToString(m[:]), SHA256: hex.EncodeToString(s[:])}
}

// extras writes the huge files, the long line, the copies of file 0 and
// the gzip files.
func extras(cfg config, m *Manifest, dirs []string, plans, huge []plan) error {
	pool := linePool(cfg.seed)
	for i, p := range huge {
		var buf bytes.Buffer
		content(&buf, p, rand.New(rand.NewPCG(cfg.seed, uint64(1<<40+i))), pool)
		if err := os.WriteFile(p.path, buf.Bytes(), 0o644); err != nil {
			return err
		}
		m.Bytes += int64(buf.Len())
		m.Files++
	}
	long := filepath.Join(dirs[len(dirs)/2], "longline.txt")
	data := append(bytes.Repeat([]byte("x"), 1<<20), "AKIA0000LONGLINE0000\nshort line\n"...)
	if err := os.WriteFile(long, data, 0o644); err != nil {
		return err
	}
	m.LongLine = long
	m.AWSKeys = append(m.AWSKeys, long)
	m.Bytes += int64(len(data))
	m.Files++
	first, err := os.ReadFile(plans[0].path)
	if err != nil {
		return err
	}
	for i := 0; i < 3; i++ {
		p := filepath.Join(dirs[(i+1)*len(dirs)/4], fmt.Sprintf("ioc-copy-%d.bin", i))
		if err := os.WriteFile(p, first, 0o755); err != nil {
			return err
		}
		m.Hashes = append(m.Hashes, hashOf(p, first))
		m.Bytes += int64(len(first))
		m.Files++
	}
	for i := 0; i < 20; i++ {
		var text bytes.Buffer
		for j := 0; j < 200; j++ {
			text.Write(pool[(i*200+j)%len(pool)])
		}
		fmt.Fprintf(&text, "aws_access_key_id = AKIA%016d\n", i)
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		if _, err := zw.Write(text.Bytes()); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		p := filepath.Join(dirs[(i*577)%len(dirs)], fmt.Sprintf("rotated-%02d.log.gz", i))
		if err := os.WriteFile(p, z.Bytes(), 0o644); err != nil {
			return err
		}
		m.GzipMarkers = append(m.GzipMarkers, p)
		m.Bytes += int64(z.Len())
		m.Files++
	}
	return nil
}
