import json,re,collections,sys
G=re.compile(r'^<think>[^<]*</think>\s*<box>\[\s*(\d+\.?\d*)\s*,\s*(\d+\.?\d*)\s*,\s*(\d+\.?\d*)\s*,\s*(\d+\.?\d*)\s*\]</box>$')
A=re.compile(r'^<think>[^<]+</think>\s*<answer>[^<]+</answer>$')
for f in sys.argv[1:]:
  d=json.load(open(f))['items']
  c=collections.Counter(); acc=collections.Counter()
  for it in d:
    for s in it['sampled']:
      t=s['turn_texts']
      if len(t)==1:
        k='direct_ok' if A.match(t[0]) else 'direct_bad'
      else:
        m=G.match(t[0])
        if not m: k='g1_bad'
        else:
          x1,y1,x2,y2=map(float,m.groups())
          deg = x2<=x1 or y2<=y1
          if len(t)>2: k=('deg' if deg else 'ok')+'_box,multi'
          else: k=('deg' if deg else 'ok')+'_box,'+('ans_ok' if A.match(t[1]) else 'ans_bad')
      c[k]+=1; acc[k]+=s['correct']
  n=sum(c.values())
  print(f)
  for k,v in c.most_common(): print('  %-22s %.3f acc %.3f'%(k,v/n,acc[k]/v))
