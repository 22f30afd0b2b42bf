"""`GET /docs`: a self-contained page that renders `/openapi.json` (no CDN, no external asset).

It lists every operation with its summary, security, parameters, request body and responses,
expanding the component schemas the document refers to. It only reads the document.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>schemabot API</title>
<meta http-equiv="Content-Security-Policy"
 content="default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}
h1{margin-bottom:0}.op{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.6em 1em}
.m{display:inline-block;min-width:4em;font-weight:bold;color:#fff;border-radius:4px;padding:0 .4em;
text-align:center}.GET{background:#2a7ab0}.POST{background:#3a9a4a}.path{font-family:monospace;font-size:15px}
pre{background:#f5f5f5;padding:.5em;overflow:auto;font-size:12px}table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
</style></head><body>
<h1 id="title">schemabot API</h1><p id="desc"></p>
<p>The machine-readable document: <a href="openapi.json">openapi.json</a>.</p><div id="ops">loading...</div>
<script>
function esc(s){return String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]))}
function deref(doc,s,depth){
  if(!s||depth>6)return s;
  if(s.$ref){return deref(doc,s.$ref.split('/').slice(1).reduce((o,k)=>o[k],doc),depth+1)}
  const out=Array.isArray(s)?[]:{};
  for(const k in s){out[k]=(typeof s[k]==='object')?deref(doc,s[k],depth+1):s[k]}
  return out}
function schemaText(doc,s){return esc(JSON.stringify(deref(doc,s,0),null,1))}
fetch('openapi.json').then(r=>r.json()).then(doc=>{
  document.getElementById('title').textContent=doc.info.title+' '+doc.info.version;
  document.getElementById('desc').textContent=doc.info.summary||'';
  let html='';
  for(const [path,item] of Object.entries(doc.paths)){
    for(const [method,op] of Object.entries(item)){
      const M=method.toUpperCase();
      html+='<div class="op"><span class="m '+M+'">'+M+'</span> <span class="path">'+esc(path)+'</span>';
      html+='<p>'+esc(op.summary||'')+(op.security?' &mdash; <em>bearer token</em>':'')+'</p>';
      if(op.parameters&&op.parameters.length){
        html+='<table><tr><th>parameter</th><th>in</th><th>required</th><th>schema</th></tr>';
        for(const p of op.parameters){html+='<tr><td>'+esc(p.name)+'</td><td>'+esc(p.in)+'</td><td>'+
          (p.required?'yes':'no')+'</td><td><pre>'+schemaText(doc,p.schema)+'</pre></td></tr>'}
        html+='</table>'}
      if(op.requestBody){const c=op.requestBody.content['application/json'];
        html+='<p>Request body (application/json):</p><pre>'+schemaText(doc,c.schema)+'</pre>'}
      html+='<p>Responses:</p><table>';
      for(const [code,r] of Object.entries(op.responses||{})){
        const c=r.content&&r.content['application/json'];
        html+='<tr><td>'+esc(code)+'</td><td>'+esc(r.description||'')+
          (c?'<details><summary>schema</summary><pre>'+schemaText(doc,c.schema)+'</pre></details>':'')+'</td></tr>'}
      html+='</table></div>'}}
  document.getElementById('ops').innerHTML=html;
}).catch(e=>{document.getElementById('ops').textContent='could not load openapi.json: '+e});
</script></body></html>
"""
