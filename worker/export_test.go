package worker

// BreakerMinRequests lets the tests outside the package bound what the breaker lets through.
const BreakerMinRequests = breakerMinRequests
