package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"cafgate/configs"
)

// adminServer answers the CLI on a unix socket whose file mode (0600) is its guard. One JSON request
// per line, one JSON answer per line.
type adminServer struct {
	l       net.Listener
	started time.Time
}

type adminRequest struct {
	Cmd string `json:"cmd"`
}

func startAdmin(path string, g *gw, log *slog.Logger) (*adminServer, error) {
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSocket != 0 {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin socket %s: another cafgate is running", path)
		}
		os.Remove(path) // stale, left by a crash
	}
	old := umask(0o177)
	l, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	a := &adminServer{l: l, started: time.Now()}
	go a.serve(g, log)
	return a, nil
}

func (a *adminServer) serve(g *gw, log *slog.Logger) {
	for {
		c, err := a.l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			var req adminRequest
			if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
				return
			}
			log.Info("admin request", "cmd", req.Cmd)
			var answer any
			switch req.Cmd {
			case "status":
				st := g.store.Stats()
				answer = map[string]any{"version": version, "uptime_seconds": int(time.Since(a.started).Seconds()),
					"listen": g.addrs, "store": map[string]uint64{"batches": st.Batches, "messages": st.Messages, "failed": st.Failed}}
			default:
				answer = map[string]string{"error": "unknown admin command"}
			}
			_ = json.NewEncoder(c).Encode(answer)
		}()
	}
}

func (a *adminServer) Close() { a.l.Close() }

func runStatus(c *cli, fs *flag.FlagSet, _ []string) error {
	cfg, err := configs.Load(flagString(fs, "config"))
	if err != nil {
		return err
	}
	conn, err := net.DialTimeout("unix", cfg.Admin.Socket, 5*time.Second)
	if err != nil {
		return fmt.Errorf("cannot reach the running gateway at %s: %w", cfg.Admin.Socket, err)
	}
	defer conn.Close()
	if err := json.NewEncoder(conn).Encode(adminRequest{Cmd: "status"}); err != nil {
		return err
	}
	var answer map[string]any
	if err := json.NewDecoder(conn).Decode(&answer); err != nil {
		return err
	}
	if e, ok := answer["error"].(string); ok {
		return errors.New(e)
	}
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(answer)
}
