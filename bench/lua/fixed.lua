-- The same request every time: the path and query are in the URL given to wrk.
require "common"
