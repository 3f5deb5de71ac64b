package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/shadowgw/shadowgw/store"
)

// The queue API lets `shadowgw queue` work while the daemon holds the store's file lock.
// It is served on [metrics] listen (loopback by default):
//
//	GET  /queue/messages?after=SEQ&limit=N   queued messages, without payloads (JSON)
//	GET  /queue/dead?after=SEQ&limit=N       dead letters
//	POST /queue/requeue?seq=1,2,3            dead letters back to the queue
//	POST /queue/purge[?dead=1]               delete every queued message (or dead letter)
//
// queueRoutes adds them to the monitor's mux (metrics.go). When the daemon is not
// running, `shadowgw queue` opens the store itself.
func queueRoutes(mux *http.ServeMux, st *store.Store) {
	list := func(f func(after uint64, limit int) ([]store.MessageInfo, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
			limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
			if err != nil || limit <= 0 || limit > 10000 {
				limit = 100
			}
			msgs, err := f(after, limit)
			writeQueueJSON(w, queueReply{Messages: msgs}, err)
		}
	}
	commandQueueRoutes(mux, st) // devicecommands_queue.go
	mux.HandleFunc("GET /queue/messages", list(st.ListMessages))
	mux.HandleFunc("GET /queue/dead", list(st.ListDeadLetters))
	mux.HandleFunc("POST /queue/requeue", func(w http.ResponseWriter, r *http.Request) {
		seqs, err := parseSeqs(strings.Split(r.URL.Query().Get("seq"), ","))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n, err := st.RequeueDeadLetters(seqs...)
		writeQueueJSON(w, queueReply{Count: n}, err)
	})
	mux.HandleFunc("POST /queue/purge", func(w http.ResponseWriter, r *http.Request) {
		purge := st.Purge
		if r.URL.Query().Get("dead") == "1" {
			purge = st.PurgeDeadLetters
		}
		n, err := purge()
		writeQueueJSON(w, queueReply{Count: n}, err)
	})
}

// queueReply is the JSON body of the queue API's answers.
type queueReply struct {
	Messages []store.MessageInfo `json:"messages,omitempty"`
	Count    int                 `json:"count"`
	Error    string              `json:"error,omitempty"`
}

func writeQueueJSON(w http.ResponseWriter, rep queueReply, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		rep.Error = err.Error()
		w.WriteHeader(http.StatusInternalServerError)
	}
	_ = json.NewEncoder(w).Encode(rep)
}
