package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashEnv names the store file for the child process of TestCrash.
const crashEnv = "SHADOWGW_STORE_CRASH_PATH"

// crashExecEnv is a command that runs the child process of TestCrash, for
// test binaries run under an emulator such as qemu-arm-static.
const crashExecEnv = "SHADOWGW_CRASH_EXEC"

// crashCyclesEnv overrides the number of kill cycles of TestCrash.
const crashCyclesEnv = "SHADOWGW_CRASH_CYCLES"

// TestCrashChild is the child process of TestCrash: it appends from several
// goroutines with real fsyncs and prints "ack <seq>" for every acknowledged
// append, "try <seq>" before a delete and "del <seq>" for every acknowledged
// delete, until it is killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process for TestCrash")
	}
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	report := func(kind string, seq uint64) {
		mu.Lock()
		defer mu.Unlock()
		// One write per line, unbuffered: a line the parent reads was
		// printed after the store acknowledged it.
		if _, err := fmt.Fprintf(os.Stdout, "%s %d\n", kind, seq); err != nil {
			os.Exit(3)
		}
	}
	deadline := time.Now().Add(time.Minute) // in case the parent died
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			payload := bytes.Repeat([]byte{byte(g)}, 200)
			for i := 0; time.Now().Before(deadline); i++ {
				m := Message{Address: "crash", Source: strconv.Itoa(g), Payload: payload}
				if err := s.Append(context.Background(), &m); err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(4)
				}
				report("ack", m.Seq)
				if i%4 == 3 { // exercise deletes and page reuse too
					report("try", m.Seq) // from here on the message may be gone
					if err := s.Delete(m.Seq); err != nil {
						fmt.Fprintln(os.Stderr, "delete:", err)
						os.Exit(5)
					}
					report("del", m.Seq)
				}
			}
		})
	}
	wg.Wait()
	os.Exit(6)
}

// TestCrash kills a child process that appends under load with SIGKILL at a
// random moment, reopens the store and checks that every acknowledged append
// and delete survived. It simulates a process crash (the kernel still writes
// the page cache), not a power cut.
func TestCrash(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("in the child process")
	}
	cycles := 5
	if testing.Short() {
		cycles = 2
	}
	if v := os.Getenv(crashCyclesEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s: %v", crashCyclesEnv, err)
		}
		cycles = n
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d, %d cycles", seed, cycles)

	path := filepath.Join(t.TempDir(), "crash.db")
	// acked maps each acknowledged seq to whether it must be present; seqs
	// whose delete was in flight at the kill may be either.
	acked := map[uint64]bool{}
	inFlight := map[uint64]bool{}
	var lastSeq uint64
	for cycle := range cycles {
		killAfter := 20 + rng.IntN(2000) // acknowledged lines before the kill
		acks, tries, dels, stderr := runCrashChild(t, path, killAfter)
		for _, seq := range acks {
			if seq <= lastSeq {
				t.Fatalf("cycle %d: seq %d acknowledged again (last seq before was %d)", cycle, seq, lastSeq)
			}
			acked[seq] = true
		}
		for _, seq := range tries {
			inFlight[seq] = true
		}
		for _, seq := range dels {
			acked[seq] = false
			delete(inFlight, seq)
		}
		s, err := Open(path, testOptions())
		if err != nil {
			t.Fatalf("cycle %d: reopen after kill: %v\nchild stderr:\n%s", cycle, err, stderr)
		}
		if err := s.Check(); err != nil {
			t.Fatalf("cycle %d: Check after kill: %v", cycle, err)
		}
		present := map[uint64]bool{}
		for _, m := range readAll(t, s) {
			present[m.Seq] = true
			lastSeq = max(lastSeq, m.Seq)
		}
		missing, resurrected := 0, 0
		for seq, want := range acked {
			switch {
			case inFlight[seq]:
				// The delete may or may not have committed; settle it now.
				acked[seq] = present[seq]
				delete(inFlight, seq)
			case want && !present[seq]:
				missing++
			case !want && present[seq]:
				resurrected++
			}
		}
		lastSeq = max(lastSeq, s.Stats().LastSeq)
		if st := s.Stats(); st.Messages != uint64(len(present)) {
			t.Errorf("cycle %d: got Stats.Messages %d, want %d", cycle, st.Messages, len(present))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("cycle %d: killed after %d lines: %d acks, %d deletes, %d queued", cycle, killAfter, len(acks), len(dels), len(present))
		if missing > 0 || resurrected > 0 {
			t.Fatalf("cycle %d: %d acknowledged messages missing, %d acknowledged deletes undone\nchild stderr:\n%s",
				cycle, missing, resurrected, stderr)
		}
		if len(acks) == 0 {
			t.Fatalf("cycle %d: child acknowledged nothing\nchild stderr:\n%s", cycle, stderr)
		}
	}
}

// runCrashChild starts TestCrashChild on path, kills it with SIGKILL once it
// printed killAfter lines, and returns the seqs of its acknowledged appends,
// started deletes and acknowledged deletes.
func runCrashChild(t *testing.T, path string, killAfter int) (acks, tries, dels []uint64, stderr string) {
	t.Helper()
	args := []string{os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1"}
	if w := strings.Fields(os.Getenv(crashExecEnv)); len(w) > 0 {
		args = append(w, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); errors.Is(err, syscall.ENOEXEC) {
		t.Skipf("cannot re-execute the test binary (%v); under an emulator set %s, e.g. %q",
			err, crashExecEnv, "qemu-arm-static -cpu arm1176")
	} else if err != nil {
		t.Fatal(err)
	}
	killed := false
	sc := bufio.NewScanner(out)
	for lines := 0; sc.Scan(); {
		kind, num, ok := strings.Cut(sc.Text(), " ")
		seq, err := strconv.ParseUint(num, 10, 64)
		if !ok || err != nil {
			continue // test framework output
		}
		switch kind {
		case "ack":
			acks = append(acks, seq)
		case "try":
			tries = append(tries, seq)
		case "del":
			dels = append(dels, seq)
		default:
			continue
		}
		// Lines printed before the kill are still read to the end of the
		// pipe: they were acknowledged too.
		if lines++; lines == killAfter && !killed {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before the kill: %v\nstderr:\n%s", err, errBuf.String())
	}
	return acks, tries, dels, errBuf.String()
}
