package prices

// OHLCLimited is OHLC with a lower tick limit, so that tests need not
// append MaxOHLCTicks ticks.
var OHLCLimited = ohlc
