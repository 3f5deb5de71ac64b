package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// OldestReceived returns when the oldest queued message, the one with the lowest seq,
// was received, or the zero Time when the queue is empty. It reads one record in a
// bbolt read transaction, whatever the size of the backlog, so it is cheap enough for
// every metrics scrape. Dead letters are not counted.
func (s *Store) OldestReceived() (time.Time, error) {
	var oldest time.Time
	err := s.view(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketQueue).Bucket(routeDefault).Cursor().First()
		if k == nil {
			return nil
		}
		seq, err := keySeq(k)
		if err != nil {
			return err
		}
		h, err := decodeMessageRecord(seq, v)
		if err != nil {
			return err
		}
		oldest = time.Unix(0, h.received)
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("store: oldest: %w", err)
	}
	return oldest, nil
}
