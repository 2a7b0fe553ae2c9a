-- +goose Up
CREATE TABLE public.orders (
    id          bigserial PRIMARY KEY,
    customer    text NOT NULL CHECK (customer <> ''),
    email       text NOT NULL,
    items       jsonb NOT NULL,
    total_cents bigint NOT NULL CHECK (total_cents > 0),
    status      text NOT NULL DEFAULT 'placed',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE public.orders IS 'keel orders example: one row per order; status follows the fulfil-order saga';

CREATE TABLE public.orders_per_customer (
    customer       text PRIMARY KEY,
    orders         bigint NOT NULL,
    total_cents    bigint NOT NULL,
    last_order_id  bigint NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE public.orders_per_customer IS 'keel orders example: read model kept by the orders-per-customer events subscription';

-- +goose Down
DROP TABLE public.orders_per_customer;
DROP TABLE public.orders;
