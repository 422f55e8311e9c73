package release

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/migplatform/mig/packaging"
)

func TestPackageVersion(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"1.2.3", "1.2.3"},
		{"v1.2.0-5-gabc123", "1.2.0+5.gabc123"},
		{"v1.2.0-5-gabc123-dirty", "1.2.0+5.gabc123.dirty"},
		{"1.3.0-rc1", "1.3.0~rc1"},
		{"dev", "0~dev"},
		{"d5ee046-dirty", "0~d5ee046.dirty"},
	} {
		if got := PackageVersion(tc.in); got != tc.want {
			t.Errorf("PackageVersion(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"", "1 2", `1"`, "-x"} {
		if err := ValidVersion(bad); err == nil {
			t.Errorf("ValidVersion(%q) = nil, want an error", bad)
		}
	}
}

// TestPackages builds the binaries once and checks the packages with the
// real dpkg-deb (and rpm where it is installed).
func TestPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	src, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bins, err := BuildBinaries(ctx, Options{Source: src, Version: "1.2.3-test"}, "amd64", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	paths, err := Package(bins, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 4 {
		t.Fatalf("got %d packages, want 4: %v", len(paths), paths)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		b, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, b)
		}
		return string(b)
	}
	want := func(what, out string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !strings.Contains(out, l) {
				t.Errorf("%s: no %q in\n%s", what, l, out)
			}
		}
	}
	if _, err := exec.LookPath("dpkg-deb"); err == nil {
		agent := filepath.Join(out, "mig-agent_1.2.3~test_amd64.deb")
		server := filepath.Join(out, "mig-server_1.2.3~test_amd64.deb")
		want("agent deb contents", run("dpkg-deb", "--contents", agent),
			"-rwxr-xr-x root/root", "./usr/sbin/mig-agent",
			"drwxr-x--- root/root", "./etc/mig/",
			"drwx------ root/root", "./var/lib/mig-agent/",
			"./usr/lib/systemd/system/mig-agent.service")
		want("agent deb info", run("dpkg-deb", "--info", agent),
			"Package: mig-agent", "Version: 1.2.3~test-1", "postinst", "prerm", "postrm")
		want("server deb contents", run("dpkg-deb", "--contents", server),
			"./usr/bin/mig-server", "drwx------ mig-server/mig-server", "./var/lib/mig-server/",
			"drwxr-x--- root/mig-server", "./etc/mig-server/")
		want("server deb info", run("dpkg-deb", "--info", server), "Package: mig-server", "preinst", "postinst")
	} else if os.Getenv("CI") != "" {
		t.Error("dpkg-deb is missing")
	}
	if _, err := exec.LookPath("rpm"); err == nil {
		agent := filepath.Join(out, "mig-agent_1.2.3~test_amd64.rpm")
		server := filepath.Join(out, "mig-server_1.2.3~test_amd64.rpm")
		want("agent rpm files", run("rpm", "-qlpv", agent), "/usr/sbin/mig-agent", "/var/lib/mig-agent", "/etc/mig")
		want("agent rpm info", run("rpm", "-qip", agent), "mig-agent", "1.2.3~test")
		want("agent rpm scripts", run("rpm", "-qp", "--scripts", agent), "postinstall", "preuninstall")
		// rpm -qlv cuts owner names to 8 characters on some versions:
		// ask for the owner and group of each file explicitly.
		want("server rpm files", run("rpm", "-qp", "--qf", "[%{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]", server),
			"mig-server:mig-server /var/lib/mig-server", "root:mig-server /etc/mig-server", "root:root /usr/bin/mig-server")
		want("server rpm scripts", run("rpm", "-qp", "--scripts", server), "preinstall", "useradd")
	} else if os.Getenv("CI") != "" {
		t.Error("rpm is missing")
	}

	if os.Getenv("MIG_TEST_DPKG") == "1" {
		testDpkgInstall(t, filepath.Join(out, "mig-agent_1.2.3~test_amd64.deb"))
	}

	// systemd-analyze verify, with the units' binaries replaced by the
	// built ones (it refuses a unit whose command does not exist). Any
	// output is a finding: it says "ignoring" for a bad setting and still
	// exits 0.
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("no systemd-analyze")
	}
	dir := t.TempDir()
	repl := strings.NewReplacer("/usr/sbin/mig-agent", bins.Agent, "/usr/bin/mig-server", bins.Server,
		"/usr/sbin/mig-loader", bins.Agent)
	var units []string
	for _, n := range []string{"mig-agent.service", "mig-loader.service", "mig-loader.timer", "mig-server.service"} {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, []byte(repl.Replace(string(packaging.File("systemd/"+n)))), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, p)
	}
	b, _ := exec.Command("systemd-analyze", append([]string{"verify"}, units...)...).CombinedOutput()
	if s := strings.TrimSpace(string(b)); s != "" {
		t.Errorf("systemd-analyze verify:\n%s", s)
	}
}

// testDpkgInstall installs the agent's .deb on this machine, checks what
// landed where docs/PACKAGING.md says, removes it (state kept), then purges
// it (state gone). It fails when dpkg or root is missing: MIG_TEST_DPKG=1
// asks for it.
func testDpkgInstall(t *testing.T, deb string) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Fatal("MIG_TEST_DPKG=1 but dpkg is missing")
	}
	if os.Geteuid() != 0 {
		t.Fatal("MIG_TEST_DPKG=1 but the test does not run as root")
	}
	if exec.Command("dpkg", "-s", "mig-agent").Run() == nil {
		t.Fatal("mig-agent is already installed on this machine: not touching it")
	}
	t.Cleanup(func() {
		exec.Command("systemctl", "stop", "mig-agent.service").Run()
		if b, err := exec.Command("dpkg", "-P", "mig-agent").CombinedOutput(); err != nil {
			t.Errorf("cleanup dpkg -P mig-agent: %v\n%s", err, b)
		}
	})
	b, err := exec.Command("dpkg", "-i", deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "Write /etc/mig/agent.json") {
		t.Errorf("dpkg -i does not say the agent waits for its configuration:\n%s", b)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{
		{"/usr/sbin/mig-agent", 0o755},
		{"/usr/lib/systemd/system/mig-agent.service", 0o644},
		{"/etc/mig", os.ModeDir | 0o750},
		{"/var/lib/mig-agent", os.ModeDir | 0o700},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Errorf("after dpkg -i: %v", err)
			continue
		}
		if fi.Mode()&(os.ModeDir|os.ModePerm) != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
	}
	if b, err := exec.Command("/usr/sbin/mig-agent", "-version").Output(); err != nil || strings.TrimSpace(string(b)) != "1.2.3-test" {
		t.Errorf("/usr/sbin/mig-agent -version = %q, %v; want 1.2.3-test", b, err)
	}
	// State survives a removal and goes with a purge.
	if err := os.WriteFile("/var/lib/mig-agent/agent.key", []byte("test"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("dpkg", "-r", "mig-agent").CombinedOutput(); err != nil {
		t.Fatalf("dpkg -r: %v\n%s", err, b)
	}
	if _, err := os.Stat("/usr/sbin/mig-agent"); err == nil {
		t.Error("dpkg -r left /usr/sbin/mig-agent")
	}
	if _, err := os.Stat("/var/lib/mig-agent/agent.key"); err != nil {
		t.Errorf("dpkg -r removed the agent's state: %v", err)
	}
	if b, err := exec.Command("dpkg", "-P", "mig-agent").CombinedOutput(); err != nil {
		t.Fatalf("dpkg -P: %v\n%s", err, b)
	}
	if _, err := os.Stat("/var/lib/mig-agent"); err == nil {
		t.Error("dpkg -P left /var/lib/mig-agent")
	}
}
