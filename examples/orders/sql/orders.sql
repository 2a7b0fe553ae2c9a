-- name: InsertOrder :one
-- Writes the order row in the request's transaction.
INSERT INTO public.orders (customer, email, items, total_cents)
VALUES (@customer, @email, @items, @total_cents)
RETURNING id;

-- name: OrderExists :one
-- Checks a payment's order before signalling its saga.
SELECT EXISTS (SELECT 1 FROM public.orders WHERE id = @id);

-- name: SetOrderStatus :exec
-- Records a saga step on the order row.
UPDATE public.orders SET status = @status, updated_at = now() WHERE id = @id;

-- name: ProjectOrder :exec
-- Folds one OrderPlaced into the orders-per-customer read model.
INSERT INTO public.orders_per_customer (customer, orders, total_cents, last_order_id)
VALUES (@customer, 1, @total_cents, @order_id)
ON CONFLICT (customer) DO UPDATE SET orders = orders_per_customer.orders + 1,
    total_cents = orders_per_customer.total_cents + EXCLUDED.total_cents,
    last_order_id = EXCLUDED.last_order_id, updated_at = now();
