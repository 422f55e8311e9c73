//go:build linux

package netstat

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestNetlinkConstants checks the ABI values written out in netlink.go
// against golang.org/x/sys/unix.
func TestNetlinkConstants(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"NLMSG_HDRLEN", nlmsgHdrLen, unix.NLMSG_HDRLEN},
		{"NLMSG_ERROR", nlmsgError, unix.NLMSG_ERROR},
		{"NLMSG_DONE", nlmsgDone, unix.NLMSG_DONE},
		{"NLM_F_REQUEST", nlmFRequest, unix.NLM_F_REQUEST},
		{"NLM_F_DUMP", nlmFDump, unix.NLM_F_DUMP},
		{"RTM_NEWLINK", rtmNewLink, unix.RTM_NEWLINK},
		{"RTM_GETLINK", rtmGetLink, unix.RTM_GETLINK},
		{"RTM_NEWADDR", rtmNewAddr, unix.RTM_NEWADDR},
		{"RTM_GETADDR", rtmGetAddr, unix.RTM_GETADDR},
		{"RTM_NEWNEIGH", rtmNewNeigh, unix.RTM_NEWNEIGH},
		{"RTM_GETNEIGH", rtmGetNeigh, unix.RTM_GETNEIGH},
		{"sizeof(ifinfomsg)", ifInfoMsgLen, unix.SizeofIfInfomsg},
		{"sizeof(ifaddrmsg)", ifAddrMsgLen, unix.SizeofIfAddrmsg},
		{"sizeof(ndmsg)", ndMsgLen, unix.SizeofNdMsg},
		{"IFLA_ADDRESS", iflaAddress, unix.IFLA_ADDRESS},
		{"IFLA_IFNAME", iflaIfname, unix.IFLA_IFNAME},
		{"IFA_ADDRESS", ifaAddress, unix.IFA_ADDRESS},
		{"IFA_LOCAL", ifaLocal, unix.IFA_LOCAL},
		{"NDA_DST", ndaDst, unix.NDA_DST},
		{"NDA_LLADDR", ndaLladdr, unix.NDA_LLADDR},
		{"NUD_INCOMPLETE", nudIncomplete, unix.NUD_INCOMPLETE},
		{"NUD_FAILED", nudFailed, unix.NUD_FAILED},
		{"NUD_NOARP", nudNoARP, unix.NUD_NOARP},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}
