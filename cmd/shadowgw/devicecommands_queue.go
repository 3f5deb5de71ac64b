package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/store"
)

// `shadowgw queue commands | commands-dead [DEVICE] | purge-commands [--dead] [DEVICE]`:
// the device queues of commands and their dead letters, through the running daemon's
// API (commandQueueRoutes) or the store file when it is stopped.

// commandsReply is the JSON of the commands API.
type commandsReply struct {
	Queues []store.CommandQueue      `json:"queues,omitempty"`
	Dead   []store.CommandDeadLetter `json:"dead,omitempty"`
	Count  uint64                    `json:"count"`
	Error  string                    `json:"error,omitempty"`
}

// commandQueueRoutes adds the commands API to the monitor's mux (queueapi.go).
func commandQueueRoutes(mux *http.ServeMux, st *store.Store) {
	write := func(w http.ResponseWriter, rep commandsReply, err error) {
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			rep.Error = err.Error()
			w.WriteHeader(http.StatusInternalServerError)
		}
		_ = json.NewEncoder(w).Encode(rep)
	}
	mux.HandleFunc("GET /queue/commands", func(w http.ResponseWriter, r *http.Request) {
		qs, err := st.CommandQueues()
		write(w, commandsReply{Queues: qs}, err)
	})
	mux.HandleFunc("GET /queue/commands/dead", func(w http.ResponseWriter, r *http.Request) {
		d, err := st.CommandDeadLetters(r.URL.Query().Get("device"), 1000)
		write(w, commandsReply{Dead: d}, err)
	})
	mux.HandleFunc("POST /queue/commands/purge", func(w http.ResponseWriter, r *http.Request) {
		n, err := purgeAllCommands(st, r.URL.Query().Get("device"), r.URL.Query().Get("dead") == "1")
		write(w, commandsReply{Count: n}, err)
	})
}

// purgeAllCommands purges in chunks until nothing is left.
func purgeAllCommands(st *store.Store, device string, dead bool) (uint64, error) {
	var total uint64
	for {
		n, err := st.PurgeCommands(context.Background(), device, dead)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// cmdQueueCommands runs the commands subcommands of `shadowgw queue`.
func cmdQueueCommands(cfg config.Config, sub string, rest []string, asJSON bool, stdout io.Writer) error {
	device := ""
	dead := false
	for _, a := range rest {
		switch {
		case a == "--dead" && sub == "purge-commands":
			dead = true
		case device == "" && a != "" && a[0] != '-' && sub != "commands":
			device = a
		default:
			return fmt.Errorf("queue %s: unexpected argument %q: %w", sub, a, errUsage)
		}
	}
	var rep commandsReply
	var err error
	if base, ok := commandsDaemon(cfg); ok {
		rep, err = commandsCall(base, sub, device, dead)
	} else {
		rep, err = commandsFile(cfg, sub, device, dead)
	}
	if err != nil {
		return err
	}
	if asJSON {
		e := json.NewEncoder(stdout)
		e.SetIndent("", "  ")
		return e.Encode(rep)
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	defer tw.Flush()
	switch sub {
	case "commands":
		fmt.Fprintln(tw, "DEVICE\tQUEUED\tBYTES\tOLDEST\tDEAD")
		for _, q := range rep.Queues {
			oldest := "-"
			if !q.Oldest.IsZero() && q.Messages > 0 {
				oldest = time.Since(q.Oldest).Round(time.Second).String()
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\n", q.Device, q.Messages, q.Bytes, oldest, q.DeadLetters)
		}
	case "commands-dead":
		fmt.Fprintln(tw, "SEQ\tDEVICE\tAT\tREASON")
		for _, d := range rep.Dead {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", d.Seq, d.Device, d.At.UTC().Format(time.RFC3339), d.Reason)
		}
	default:
		what := "queued commands"
		if dead {
			what = "command dead letters"
		}
		fmt.Fprintf(tw, "purged %d %s\n", rep.Count, what)
	}
	return nil
}

func commandsDaemon(cfg config.Config) (string, bool) {
	if cfg.Metrics.Listen == "" {
		return "", false
	}
	base := "http://" + cfg.Metrics.Listen
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(base + "/queue/commands")
	if err != nil {
		return "", false
	}
	resp.Body.Close()
	return base, resp.StatusCode == http.StatusOK
}

func commandsCall(base, sub, device string, dead bool) (commandsReply, error) {
	c := &http.Client{Timeout: 60 * time.Second}
	q := url.Values{"device": {device}}
	if dead {
		q.Set("dead", "1")
	}
	var resp *http.Response
	var err error
	switch sub {
	case "commands":
		resp, err = c.Get(base + "/queue/commands")
	case "commands-dead":
		resp, err = c.Get(base + "/queue/commands/dead?" + q.Encode())
	default:
		resp, err = c.Post(base+"/queue/commands/purge?"+q.Encode(), "", nil)
	}
	if err != nil {
		return commandsReply{}, err
	}
	defer resp.Body.Close()
	var rep commandsReply
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return rep, fmt.Errorf("commands API: %s: %w", resp.Status, err)
	}
	if rep.Error != "" {
		return rep, errors.New(rep.Error)
	}
	return rep, nil
}

func commandsFile(cfg config.Config, sub, device string, dead bool) (commandsReply, error) {
	st, err := store.Open(filepath.Join(cfg.Store.Dir, storeFile), store.Options{LockTimeout: 300 * time.Millisecond})
	if errors.Is(err, store.ErrLocked) {
		return commandsReply{}, fmt.Errorf("the gateway is running and holds the store, but does not serve the queue API: stop it first: %w", err)
	}
	if err != nil {
		return commandsReply{}, err
	}
	defer st.Close()
	var rep commandsReply
	switch sub {
	case "commands":
		rep.Queues, err = st.CommandQueues()
	case "commands-dead":
		rep.Dead, err = st.CommandDeadLetters(device, 1000)
	default:
		rep.Count, err = purgeAllCommands(st, device, dead)
	}
	return rep, err
}
