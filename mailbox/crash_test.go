// Crash test: a child process accepts messages and reports each acknowledgement; it is killed with
// SIGKILL mid-stream, and every message it acknowledged must be in the database afterwards.

package mailbox

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
)

const crashEnv = "MAILBOX_CRASH_CHILD_DB"

// TestCrashChild is the child half of TestCrashKeepsAcknowledged; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("runs only as the child of TestCrashKeepsAcknowledged")
	}
	s, err := Open(context.Background(), Options{Path: path, ContentKey: testKey(7)})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("crash-%d-%d", w, i)
				if err := s.Accept(context.Background(), msg(id, body(i))); err != nil {
					fmt.Println("accept:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Println(id) // the acknowledgement: printed only after Accept returned
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestCrashKeepsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	opt := testOpts(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), crashEnv+"="+opt.Path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 300 {
		acked = append(acked, sc.Text())
	}
	cmd.Process.Kill() // SIGKILL: no Close, no deferred work
	cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("child stopped early: %v", acked)
	}
	s := openTest(t, opt)
	for _, id := range acked {
		if _, err := s.Message(context.Background(), id); err != nil {
			t.Fatalf("acknowledged %s lost after kill: %v", id, err)
		}
	}
	rep, err := s.Verify(context.Background())
	if err != nil || len(rep.Failed) != 0 || rep.SQLiteCheck != "ok" || rep.Messages < len(acked) {
		t.Fatalf("Verify after kill = %+v, %v", rep, err)
	}
}

func TestAllPresentResolvesCommitOutcome(t *testing.T) {
	s := openTest(t, testOpts(t))
	acceptN(t, s, "p", 2)
	pend := func(id, digest string) *pending { return &pending{row: &row{id: id, digest: digest}} }
	var d0, d1 string
	s.rdb.QueryRow(`SELECT digest FROM messages WHERE id = 'p0'`).Scan(&d0)
	s.rdb.QueryRow(`SELECT digest FROM messages WHERE id = 'p1'`).Scan(&d1)
	ctx := context.Background()
	if !s.allPresent(ctx, []*pending{pend("p0", d0), pend("p1", d1)}) {
		t.Error("stored batch not seen as present")
	}
	if s.allPresent(ctx, []*pending{pend("p0", d0), pend("p9", d1)}) {
		t.Error("batch with a missing message seen as present")
	}
	if s.allPresent(ctx, []*pending{pend("p0", d1)}) {
		t.Error("message with another digest seen as present")
	}
}
