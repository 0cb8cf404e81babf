// One results file in a few lines, by the suite's own classification.
// usage: node summary.mjs SUITE_DIR NAME RESULTS.json
import fs from 'fs'
import { loadSuite, classify, totals } from './classify.mjs'

const [suiteDir, name, file] = process.argv.slice(2)
const suite = await loadSuite(suiteDir)
const rows = classify(suite, JSON.parse(fs.readFileSync(file, 'utf8')))
const t = totals(rows)
const rest = k => `${k.dependency} not judged (a test they depend on failed), ` +
  `${k.setup} setup failed, ${k.harness} harness errors`
console.log(`${name}:`)
console.log(`  required: ${t.required.pass}/${t.required.total} passed, ${t.required.fail} failed, ${rest(t.required)}`)
console.log(`  optional: ${t.optional.pass}/${t.optional.total} passed, ${t.optional.fail} optional failed, ${rest(t.optional)}`)
console.log(`  checks:   ${t.check.yes} yes, ${t.check.no} no (behaviour the spec leaves open), ${rest(t.check)}`)
const harness = rows.filter(r => ['harness_fail', 'untested'].includes(r.outcome))
for (const r of harness) console.log(`  harness error: ${r.id}: ${r.outcome} ${r.reason}`)
// Errors that are neither a failed check (Assertion) nor a failed setup step
// (Setup): a request that got no HTTP answer (FetchError: reset, refused,
// cut body) or the client's own exception. The suite counts them as
// failures; here they are named, since they point at the proxy or the run.
const odd = rows.filter(r => r.reason && !/^(Assertion|Setup): /.test(r.reason))
if (odd.length) {
  console.log(`  ${odd.length} tests ended on an error, not a check (counted as failures by the suite):`)
  for (const r of odd.slice(0, 10)) console.log(`    ${r.id}: ${r.reason}`)
  if (odd.length > 10) console.log(`    … ${odd.length - 10} more`)
}
