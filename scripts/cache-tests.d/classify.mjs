// The suite's own reading of a results file: each test's outcome as the
// suite's display code decides it (lib/display.mjs determineTestResult, the
// symbols cache-tests.fyi shows), with the test's kind and feature group.
import path from 'path'
import { pathToFileURL } from 'url'

// determineTestResult answers with the suite's display triple; its third
// member names the outcome.
const OUTCOMES = {
  '✅': 'pass',
  '⛔️': 'fail',
  '⚠️': 'optional_fail',
  Y: 'yes',
  N: 'no',
  '🔹': 'setup_fail',
  '⁉️': 'harness_fail',
  '⚪️': 'dependency_fail',
  '↻': 'retry',
  '-': 'untested'
}

export const SYMBOL = Object.fromEntries(Object.entries(OUTCOMES).map(([s, o]) => [o, s]))

async function load (suiteDir, file) {
  return import(pathToFileURL(path.join(suiteDir, file)).href)
}

// The test groups the suite's command-line client runs (cli.mjs: the index
// plus Surrogate-Control), and the suite's classifier.
export async function loadSuite (suiteDir) {
  const index = (await load(suiteDir, 'tests/index.mjs')).default
  const surrogate = (await load(suiteDir, 'tests/surrogate-control.mjs')).default
  const display = await load(suiteDir, 'lib/display.mjs')
  const groups = [...index, surrogate]
  return { groups, determine: display.determineTestResult }
}

// One row per test the command-line client runs (browser-only tests aside):
// { id, name, group, kind: required | optional | check, outcome, reason }.
export function classify (suite, results) {
  const rows = []
  for (const group of suite.groups) {
    for (const test of group.tests) {
      if (test.browser_only === true) continue
      const symbol = suite.determine(suite.groups, test.id, results)[2]
      const outcome = OUTCOMES[symbol]
      if (outcome === undefined) throw new Error(`unknown outcome ${symbol} for ${test.id}`)
      const r = results[test.id]
      rows.push({
        id: test.id,
        name: test.name,
        group: group.name,
        kind: test.kind === 'optimal' ? 'optional' : test.kind === 'check' ? 'check' : 'required',
        outcome,
        reason: Array.isArray(r) ? `${r[0]}: ${r[1]}` : ''
      })
    }
  }
  return rows
}

// Counts by kind: required and optional tests pass or fail; checks (how a
// cache behaves where the spec leaves it open) answer yes or no.
// dependency: not judged, a test this one depends on did not pass.
// setup: the test could not reach what it checks (🔹: often the cache did
// not store what a setup request needed, or refused it; ↻: it retried).
// harness: the suite itself failed (⁉️), or the test was not run (-).
export function totals (rows) {
  const t = {}
  for (const kind of ['required', 'optional', 'check']) {
    t[kind] = { total: 0, pass: 0, fail: 0, yes: 0, no: 0, dependency: 0, setup: 0, harness: 0 }
  }
  for (const row of rows) {
    const k = t[row.kind]
    k.total++
    switch (row.outcome) {
      case 'pass': k.pass++; break
      case 'fail': case 'optional_fail': k.fail++; break
      case 'yes': k.yes++; break
      case 'no': k.no++; break
      case 'dependency_fail': k.dependency++; break
      case 'setup_fail': case 'retry': k.setup++; break
      default: k.harness++
    }
  }
  return t
}
