package loader

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/migplatform/mig/internal/packed"
	"github.com/migplatform/mig/internal/version"
)

// Main is mig-loader: it parses args, runs one check and returns the exit
// code (0: nothing to do or updated; 1: a failure, logged; 2: bad usage or
// configuration).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mig-loader", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "configuration file (default: the configuration appended to this binary, else "+DefaultConfigPath+")")
	printVersion := fs.Bool("version", false, "print the version and exit")
	showConfig := fs.Bool("show-config", false, "print the configuration and exit")
	dryRun := fs.Bool("dryrun", false, "check and report what would be installed, change nothing")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mig-loader: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *printVersion {
		fmt.Fprintln(stdout, version.Version)
		return 0
	}
	cfg, err := loadAnyConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "mig-loader: %v\n", err)
		return 2
	}
	if *showConfig {
		out, _ := json.MarshalIndent(cfg, "", "  ")
		fmt.Fprintf(stdout, "%s\n", out)
		return 0
	}
	w := io.Writer(stderr)
	if err := os.MkdirAll(cfg.StateDir, 0o700); err == nil {
		if f, err := openLog(filepath.Join(cfg.StateDir, LogFile)); err == nil {
			defer f.Close()
			w = io.MultiWriter(stderr, f)
		} else {
			fmt.Fprintf(stderr, "mig-loader: cannot open the log file: %v\n", err)
		}
	}
	log := slog.New(slog.NewJSONHandler(w, nil)).With("loader_version", version.Version)
	l, err := New(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 2
	}
	l.DryRun = *dryRun
	if err := l.Run(ctx); err != nil {
		log.Error("run failed; the installed agent is unchanged or restored", "err", err)
		return 1
	}
	return 0
}

// loadAnyConfig reads the file at path, or when path is empty, the payload
// appended to this binary, or DefaultConfigPath.
func loadAnyConfig(path string) (*Config, error) {
	if path != "" {
		return LoadConfig(path)
	}
	if exe, err := os.Executable(); err == nil {
		payload, found, err := packed.Read(exe)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		if found {
			return ParseConfig(payload, "configuration appended to "+exe)
		}
	}
	return LoadConfig(DefaultConfigPath)
}

// openLog opens the log for appending, moving a log past MaxLog to
// loader.log.1 first, so that the two files stay under twice MaxLog.
func openLog(path string) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > MaxLog {
		if err := os.Rename(path, path+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
}
