-- status: refused a streaming join must join two windowed inputs on the same window
-- Local item suggestion: sellers in some states with auctions in category 10 (a join of
-- two unbounded streams).
SELECT P.name, P.city, P.state, A.id
FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
WHERE A.category = 10 AND (P.state = 'or' OR P.state = 'id' OR P.state = 'ca')
