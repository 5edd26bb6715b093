-- Requests per rate-limit key and clock minute, added up over every instance (each adds its
-- own every second); minutes more than two old are deleted by the sweep.
CREATE TABLE rate_counts (
    key text NOT NULL,
    window_start bigint NOT NULL,
    count integer NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX rate_counts_window ON rate_counts (window_start);
