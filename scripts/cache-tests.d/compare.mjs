// Several results files side by side, as markdown: totals per proxy, then
// every test grouped by feature with each proxy's outcome, then the reasons
// of the required tests each proxy fails.
// usage: node compare.mjs [--reasons=NAME,...] SUITE_DIR RESULTS_DIR NAME[=FILE]...
// NAME alone reads RESULTS_DIR/NAME.json; a missing file is "pending".
// --reasons: list the failures of these runs only (default: every run).
import fs from 'fs'
import path from 'path'
import { loadSuite, classify, totals, SYMBOL } from './classify.mjs'

let argv = process.argv.slice(2)
let reasonsFor = null
if (argv[0]?.startsWith('--reasons=')) {
  reasonsFor = argv[0].slice('--reasons='.length).split(',').filter(Boolean)
  argv = argv.slice(1)
}
const [suiteDir, resultsDir, ...args] = argv
const suite = await loadSuite(suiteDir)

const runs = args.map(arg => {
  const [name, given] = arg.includes('=') ? arg.split(/=(.*)/s) : [arg, undefined]
  const file = given ?? path.join(resultsDir, `${name}.json`)
  if (!fs.existsSync(file)) return { name, pending: true }
  const metaFile = file.replace(/\.json$/, '.meta.json')
  const meta = fs.existsSync(metaFile) ? JSON.parse(fs.readFileSync(metaFile, 'utf8')) : {}
  const rows = classify(suite, JSON.parse(fs.readFileSync(file, 'utf8')))
  return { name, meta, rows, byId: Object.fromEntries(rows.map(r => [r.id, r])), totals: totals(rows) }
})

const cell = s => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ')
const out = []
const p = s => out.push(s)

p('| | ' + runs.map(r => r.name).join(' | ') + ' |')
p('| --- | ' + runs.map(() => '---').join(' | ') + ' |')
const row = (label, f) => p(`| ${label} | ` + runs.map(r => (r.pending ? 'pending' : f(r))).join(' | ') + ' |')
row('version', r => cell(r.meta.version ?? '?'))
row('required tests passed', r => `**${r.totals.required.pass}** / ${r.totals.required.total}`)
row('required tests failed', r => r.totals.required.fail)
row('optional tests passed', r => `**${r.totals.optional.pass}** / ${r.totals.optional.total}`)
row('optional tests failed', r => r.totals.optional.fail)
const all = (r, f) => f(r.totals.required) + f(r.totals.optional) + f(r.totals.check)
row('not judged: a test they depend on failed', r => all(r, k => k.dependency))
row('setup failed', r => all(r, k => k.setup))
row('harness errors', r => all(r, k => k.harness))
row('checks (no right answer): yes / no', r => `${r.totals.check.yes} / ${r.totals.check.no}`)
row('run on', r => cell((r.meta.date ?? '?').slice(0, 10)))
p('')
p('✅ pass · ⛔️ fail · ⚠️ optional test failed · Y / N check answered yes / no · ' +
  '⚪️ not judged (a test it depends on failed) · 🔹 setup failed · ⁉️ harness error · ↻ the cache retried · - not tested')

// By feature: passes of required and of optional tests in each group.
p('')
p('Passes by feature, as *required, optional*; the second column counts the tests.')
p('')
p('| feature | tests | ' + runs.map(r => r.name).join(' | ') + ' |')
p('| --- | --- | ' + runs.map(() => ':-:').join(' | ') + ' |')
for (const group of suite.groups) {
  const tests = group.tests.filter(t => t.browser_only !== true)
  const count = (kind, rows) => rows.filter(x => x.group === group.name && x.kind === kind).length
  const req = tests.filter(t => t.kind !== 'optimal' && t.kind !== 'check').length
  const opt = tests.filter(t => t.kind === 'optimal').length
  if (!req && !opt) continue
  const cells = runs.map(r => {
    if (r.pending) return 'pending'
    const passed = r.rows.filter(x => x.outcome === 'pass')
    return `${count('required', passed)}, ${count('optional', passed)}`
  })
  p(`| ${cell(group.name)} | ${req}, ${opt} | ${cells.join(' | ')} |`)
}

for (const group of suite.groups) {
  const tests = group.tests.filter(t => t.browser_only !== true)
  if (!tests.length) continue
  p('')
  p(`#### ${group.name}`)
  p('')
  p('| test | kind | ' + runs.map(r => r.name).join(' | ') + ' |')
  p('| --- | --- | ' + runs.map(() => ':-:').join(' | ') + ' |')
  for (const t of tests) {
    const kind = t.kind === 'optimal' ? 'optional' : t.kind === 'check' ? 'check' : 'required'
    const cells = runs.map(r => (r.pending ? '' : SYMBOL[r.byId[t.id].outcome]))
    p(`| \`${t.id}\` ${cell(t.name)} | ${kind} | ${cells.join(' | ')} |`)
  }
}

for (const r of runs) {
  if (reasonsFor && !reasonsFor.includes(r.name)) continue
  if (r.pending) {
    p('')
    p(`#### Why ${r.name} fails`)
    p('')
    p('Pending: no results yet.')
    continue
  }
  const failed = r.rows.filter(x => x.kind !== 'check' && !['pass', 'dependency_fail'].includes(x.outcome))
  p('')
  p(`#### Why ${r.name} fails`)
  p('')
  p('Each required or optional test that did not pass, with the suite\'s message ' +
    '(tests not judged, ⚪️, are in the tables above).')
  p('')
  if (!failed.length) p('Nothing failed.')
  for (const x of failed) p(`- \`${x.id}\` (${x.kind}, ${x.outcome}): ${cell(x.reason)}`)
}
p('')
console.log(out.join('\n'))
