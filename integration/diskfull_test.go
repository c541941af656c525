package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDiskFull puts the data directory on an 8 MiB tmpfs and fills it while a client submits: every
// answer is 250 (and the message stored) or a store refusal, 451 4.3.0 or 452 4.3.1 (and nothing
// stored); once full, a 1 MiB message is always refused; after the filler is deleted a submission
// succeeds and verify is clean. Needs root to mount; skipped (loudly) otherwise.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev")
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", data).CombinedOutput(); err != nil {
		t.Skipf("!!!!! SKIPPED: the disk-full test needs to mount a tmpfs (root): %v %s", err, out)
	}
	t.Cleanup(func() { unmount(t, data) })

	g := newGateway(t, dir)
	info := g.start()
	sender := info.accountWith(t, "active")
	rcpt := info.accountWith(t, "active", sender.Mail)
	conf := tlsConfig(t, info)
	send := func(body []byte) result {
		return submitOnce(info, "submissions", conf, sender, []string{rcpt.Mail}, body)
	}
	msg := func(size int) []byte {
		line := strings.Repeat("D", 74) + "\r\n"
		return newMessage(sender.Mail, rcpt.Mail, "disk full "+randomToken(8), randomToken(16),
			strings.TrimSuffix(strings.Repeat(line, size/len(line)), "\r\n"))
	}

	first := msg(2048)
	if r := send(first); r.Reply.AcceptedID() == "" {
		t.Fatalf("submission before the disk filled up: %v", r)
	}

	// Phase 1: a stream of 64 KiB submissions while the filler grows. Each answer must be 250 (and the
	// message then stored) or a store refusal (and the message then absent).
	filler := filepath.Join(data, "filler")
	var accepted = map[string]string{} // digest -> ID
	var refused [][]byte
	done := make(chan struct{})
	streamed := make(chan struct{})
	go func() {
		defer close(streamed)
		for stop := false; !stop; {
			select {
			case <-done:
				stop = true // one more after the disk is full
			default:
			}
			body := msg(64 << 10)
			r := send(body)
			switch {
			case r.Reply.AcceptedID() != "":
				accepted[digest(body)] = r.Reply.AcceptedID()
			case r.Stage == "data" && storeRefusal(r.Reply) && r.Reply.RefusalID() != "":
				refused = append(refused, body)
			default:
				t.Errorf("while the disk was filling up: %v", r)
				return
			}
		}
	}()
	fill(t, filler, 30*time.Millisecond)
	close(done)
	<-streamed
	t.Logf("while filling: %d accepted, %d refused", len(accepted), len(refused))

	// Phase 2: the disk is full. SQLite reuses the space its WAL file already holds after a
	// checkpoint, so the first messages may still fit durably: each is either accepted (and then must
	// be stored intact) or refused with 451/452 4.3.x and an ID (and then must not be stored). Once the
	// preallocated space is used up every message is refused; at least one refusal must come.
	refusedWhileFull := 0
	for i := 0; i < 24 && refusedWhileFull < 3; i++ {
		body := msg(1 << 20)
		r := send(body)
		t.Logf("1 MiB message while full: %v", r)
		switch {
		case r.Reply.AcceptedID() != "":
			accepted[digest(body)] = r.Reply.AcceptedID()
		case r.Stage == "data" && storeRefusal(r.Reply) && r.Reply.RefusalID() != "":
			refused = append(refused, body)
			refusedWhileFull++
		default:
			t.Errorf("while the disk is full, want 451 4.3.0 or 452 4.3.1 (with an ID) at end of data, or an acceptance, got %v", r)
		}
	}
	if refusedWhileFull == 0 {
		t.Errorf("24 MiB submitted to a full disk and nothing was refused")
	}
	small := msg(512)
	rs := send(small)
	t.Logf("small message while full: %v", rs)
	smallAccepted := rs.Reply.AcceptedID() != ""
	switch {
	case smallAccepted:
		t.Logf("the small message fitted in space the store had already allocated; it must be stored intact")
	case rs.Stage != "data" || !storeRefusal(rs.Reply):
		t.Errorf("small message while full: want 451/452 4.3.x or an acceptance, got %v", rs)
	default:
		refused = append(refused, small)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	after := msg(1 << 20)
	ra := send(after)
	if ra.Reply.AcceptedID() == "" {
		t.Errorf("after the filler was deleted, submission: %v", ra)
	}
	g.stop()

	stored := map[string]string{}
	for _, m := range g.messages() {
		stored[m.SHA256] = m.ID
	}
	for _, b := range refused {
		if id := stored[digest(b)]; id != "" {
			t.Errorf("a message refused while the disk was full is stored as %s", id)
		}
	}
	for _, b := range [][]byte{first, after} {
		if stored[digest(b)] == "" {
			t.Errorf("an accepted message is missing (sha256 %s)", digest(b))
		}
	}
	for sha, id := range accepted {
		if stored[sha] != id {
			t.Errorf("message %s, accepted while the disk was filling up, is not stored under that ID", id)
		}
	}
	if smallAccepted && stored[digest(small)] != rs.Reply.AcceptedID() {
		t.Errorf("the small message accepted while full as %s is not stored under that ID", rs.Reply.AcceptedID())
	}
	g.requireVerifyClean(len(stored))
}

func storeRefusal(r reply) bool {
	return (r.Code == 451 && r.Enhanced() == "4.3.0") || (r.Code == 452 && r.Enhanced() == "4.3.1")
}

// fill writes path until the file system has no room left, pausing after each 256 KiB.
func fill(t *testing.T, path string, pause time.Duration) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{256 << 10, 4096, 512, 1} {
		buf := make([]byte, chunk)
		for {
			if chunk == 256<<10 {
				time.Sleep(pause)
			}
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling %s: %v", path, err)
				}
				break
			}
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err == nil {
		t.Logf("data file system filled: %d blocks free", st.Bavail)
	}
}

func unmount(t *testing.T, dir string) {
	for i := 0; i < 20; i++ {
		out, err := exec.Command("umount", dir).CombinedOutput()
		if err == nil {
			return
		}
		if i == 19 {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
