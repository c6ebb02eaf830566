"""Payments through WeChat Pay API v3, with the `wechatpayv3` client: no gateway, bot or domain imports."""
