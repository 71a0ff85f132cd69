-- status: runs
-- Local item suggestion: sellers in some states with auctions in category 10 (a join of
-- two unbounded streams). The generator writes states in upper case, as the spec's does.
SELECT P.name, P.city, P.state, A.id
FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA')
