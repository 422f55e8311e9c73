// Package pgtest gives tests their own PostgreSQL schema in the database
// named by MIG_TEST_POSTGRES_URL, so that tests run in parallel and
// repeatedly against one server without seeing each other's rows.
//
// Without the variable, tests that need PostgreSQL are skipped, unless
// MIG_TEST_REQUIRE_SERVICES=1 (set by CI), in which case they fail.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL is the environment variable naming the test database.
const EnvURL = "MIG_TEST_POSTGRES_URL"

// EnvRequire is the environment variable that turns a missing service into
// a failure.
const EnvRequire = "MIG_TEST_REQUIRE_SERVICES"

// URL returns the test database's connection string, or skips (fails, when
// services are required) the test without one.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s is not set and %s=1: PostgreSQL is required", EnvURL, EnvRequire)
		}
		t.Skipf("%s is not set: skipping the PostgreSQL tests", EnvURL)
	}
	return u
}

// Schema makes a new, empty schema in the test database, drops it (with
// everything in it) when the test ends, and returns a connection string
// whose search_path is that schema and whose pool has at most maxConns
// connections (0: pgx's default).
func Schema(t testing.TB, maxConns int) string {
	t.Helper()
	base := URL(t)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random schema name: %v", err)
	}
	name := "mig_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", EnvURL, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("create schema %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return withParams(t, base, map[string]string{"search_path": name, "pool_max_conns": maxConnsParam(maxConns)})
}

// withParams adds settings to a connection string, in URL or key=value
// form; empty values are left out.
func withParams(t testing.TB, conn string, params map[string]string) string {
	t.Helper()
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		if err != nil {
			t.Fatalf("%s: %v", EnvURL, err)
		}
		q := u.Query()
		for k, v := range params {
			if v != "" {
				q.Set(k, v)
			}
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	for k, v := range params {
		if v != "" {
			conn += " " + k + "=" + v
		}
	}
	return conn
}

// maxConnsParam formats a pool size; zero and below leave pgx's default.
func maxConnsParam(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}
