"""Suppliers and offers, demand forecasts, purchase-plan runs, purchase and transfer orders, alerts."""
