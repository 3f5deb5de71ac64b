package store

import "time"

// OldestReceived returns when the oldest queued message of any route was
// received, or the zero Time when the queue is empty. It reads one record per
// route in a bbolt read transaction, whatever the size of the backlog, so it is
// cheap enough for every metrics scrape. Dead letters are not counted.
func (s *Store) OldestReceived() (time.Time, error) {
	per, err := s.Oldest()
	var oldest time.Time
	for _, t := range per {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	return oldest, err
}
